"""MQTT against a real mosquitto: topics and payloads, Home Assistant discovery, stats on a timer, a broker that
dies or hangs and comes back, the bounded outbox, credentials from the environment, and TLS. Every test runs the
real pipeline with the pet model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from app import __version__
from app.config import load_settings
from app.pipeline import Pipeline
from app.publishers.base import Output, Publisher
from app.publishers.mqtt import MqttPublisher
from conftest import MODELS, free_port
from test_known_answers import CAT_BREEDS


RESULT_KEYS = {"pipeline", "source", "seq", "ts", "size", "detections", "timing_ms"}
PATTERN = ("camera.source=pattern", "camera.width=320", "camera.height=240", "camera.fps=10")


def wait_for(condition: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class Broker:
    """mosquitto on 127.0.0.1:port, without persistence: killed, it forgets every retained message."""

    def __init__(self, directory: Path, port: int, settings: str = "allow_anonymous true\n") -> None:
        self.port = port
        self.conf = directory / f"mosquitto-{port}.conf"
        # as root, mosquitto switches to the `mosquitto` user, which cannot read files in pytest's private tmp_path
        stay = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"listener {port} 127.0.0.1\npersistence false\n{stay}{settings}")
        self.log = directory / f"mosquitto-{port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not start: {self.log.read_text()}") from None
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    running = Broker(tmp_path, free_port())
    running.start()
    yield running
    running.kill()


class Subscriber:
    """A test client that records every message under `topic`."""

    def __init__(self, port: int, topic: str = "#", username: str = "", password: str = "", ca: str = "") -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if username:
            self.client.username_pw_set(username, password)
        if ca:
            self.client.tls_set(ca_certs=ca)
        self.client.on_connect = lambda client, *_: client.subscribe(topic, 1)
        self.client.on_message = self._record
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _record(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def payloads(self, topic: str, retained: bool | None = None) -> list[bytes]:
        with self._lock:
            return [m.payload for m in self.messages
                    if m.topic == topic and (retained is None or m.retain == retained)]

    def topics(self, start: str = "") -> list[str]:
        with self._lock:
            return [m.topic for m in self.messages if m.topic.startswith(start)]

    def discovery(self) -> list[str]:
        """The Home Assistant discovery config topics received, in order."""
        return [t for t in self.topics("homeassistant/") if t.endswith("/config")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def subscribed(port: int, topic: str = "#", **options: str) -> Iterator[Subscriber]:
    subscriber = Subscriber(port, topic, **options)
    try:
        yield subscriber
    finally:
        subscriber.close()


def pipeline_file(tmp_path: Path, labels: list[str] | None) -> Path:
    """The pet detector with a publish block watching `labels`."""
    path = tmp_path / "pets.yaml"
    path.write_text(
        "description: cats and dogs, for the MQTT tests\nstages:\n  - preprocess: {}\n"
        f"  - inference: {{model: {MODELS / 'ssd_mobilenet_v1_fine_tuned_pet.tflite'}, "
        f"labels: {MODELS / 'pet_labels.txt'}}}\n"
        f"  - postprocess: {{min_score: 0.5}}\npublish: {{labels: {json.dumps(labels)}}}\n")
    return path


class Delivered(Publisher):
    """Placed after MQTT in the output lane: counts the frames that got past it."""

    def __init__(self) -> None:
        self.count = 0

    def publish(self, out: Output) -> None:
        self.count += 1


def mqtt_pipeline(tmp_path: Path, *overrides: str, labels: list[str] | None = None,
                  config: Path | None = None) -> tuple[Pipeline, MqttPublisher]:
    settings = load_settings(str(pipeline_file(tmp_path, labels)), config, ["mqtt.host=127.0.0.1", *overrides])
    publisher = MqttPublisher(settings.device.mqtt)
    return Pipeline(settings, [publisher, Delivered()]), publisher


@contextmanager
def running(pipeline: Pipeline) -> Iterator[threading.Thread]:
    """Run a live pipeline in a thread; stop it at the end, and fail if it failed."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            pipeline.run()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        pipeline.stop()
        thread.join(10)
    assert not thread.is_alive(), "the pipeline did not stop"
    assert not errors, errors


def processed_per_second(pipeline: Pipeline, seconds: float = 2.0) -> float:
    """Frames per second through the whole output lane (past the MQTT publisher), none lost on the way to it."""
    delivered = pipeline.publishers[-1]
    before, started = delivered.count, time.monotonic()
    time.sleep(seconds)
    assert pipeline.stats.drops["output_full"] == 0, "the output lane fell behind"
    return (delivered.count - before) / (time.monotonic() - started)


def test_events_counts_snapshot_discovery_and_availability(tmp_path, broker, cat_clip):
    """No watched labels: every label gets its count topic and Home Assistant entities as it first appears."""
    pipeline, _ = mqtt_pipeline(tmp_path, f"mqtt.port={broker.port}", f"camera.source={cat_clip}",
                                "camera.realtime=true", "camera.loop=true")
    with subscribed(broker.port) as live:
        with running(pipeline):
            wait_for(lambda: live.payloads("smartcam/cam0/events") and live.payloads("smartcam/cam0/snapshot"),
                     "an event and a snapshot")
            label = json.loads(live.payloads("smartcam/cam0/events")[0])["label"]
            configs = [f"homeassistant/sensor/smartcam_cam0/{label}_count/config",
                       f"homeassistant/binary_sensor/smartcam_cam0/{label}_occupancy/config",
                       "homeassistant/image/smartcam_cam0/snapshot/config"]
            with subscribed(broker.port) as fresh:  # a newcomer gets the retained state
                wait_for(lambda: all(fresh.payloads(topic, retained=True) for topic in configs)
                         and fresh.payloads("smartcam/cam0/snapshot", retained=True), "the retained documents")
                assert fresh.payloads("smartcam/availability", retained=True) == [b"online"]
                assert fresh.payloads(f"smartcam/cam0/{label}", retained=True)[0].isdigit()
                assert fresh.payloads("smartcam/cam0/snapshot", retained=True)[0][:2] == b"\xff\xd8"
                sensor, occupancy, image = (json.loads(fresh.payloads(topic, retained=True)[0]) for topic in configs)
        wait_for(lambda: live.payloads("smartcam/availability")[-1:] == [b"offline"], "offline after close")

    event = json.loads(live.payloads("smartcam/cam0/events")[0])
    assert event["type"] == "appeared" and event["label"] in CAT_BREEDS and event["previous"] == 0
    assert event["count"] >= 1 and (event["camera"], event["pipeline"]) == ("cam0", "pets")
    assert set(event["result"]) >= RESULT_KEYS and event["result"]["size"] == [1280, 720]
    assert event["label"] in {d["label"] for d in event["result"]["detections"]}
    assert live.payloads("smartcam/availability")[0] == b"online"

    assert sensor["state_topic"] == f"smartcam/cam0/{label}" and sensor["state_class"] == "measurement"
    assert sensor["unique_id"] == f"smartcam_cam0_{label}_count" and sensor["name"] == f"cam0 {label} count"
    assert occupancy["device_class"] == "occupancy" and occupancy["state_topic"] == f"smartcam/cam0/{label}"
    assert occupancy["value_template"] == "{{ 'ON' if value|int > 0 else 'OFF' }}"
    assert image["image_topic"] == "smartcam/cam0/snapshot" and image["content_type"] == "image/jpeg"
    for document in (sensor, occupancy, image):
        assert document["availability_topic"] == "smartcam/availability"
        assert document["device"] == {"identifiers": ["smartcam_cam0"], "name": "smartcam cam0",
                                      "model": "smartcam", "sw_version": __version__}


def test_discovery_is_sent_again_when_home_assistant_comes_online(tmp_path, broker):
    pipeline, _ = mqtt_pipeline(tmp_path, f"mqtt.port={broker.port}", *PATTERN, labels=["Bengal", "beagle"])
    with subscribed(broker.port, "homeassistant/#") as home_assistant, running(pipeline):
        wait_for(lambda: len(home_assistant.discovery()) == 5, "the discovery documents")
        home_assistant.client.publish("homeassistant/status", "online", qos=1)
        wait_for(lambda: len(home_assistant.discovery()) == 2 * 5, "the discovery documents again")
        assert len(set(home_assistant.discovery())) == 5


def test_stats_keep_coming_when_frames_stop(tmp_path, broker):
    pipeline, _ = mqtt_pipeline(tmp_path, f"mqtt.port={broker.port}", "mqtt.stats_interval_s=0.3",
                                "camera.source=pattern", "camera.width=320", "camera.height=240", "camera.fps=0.2")
    with subscribed(broker.port, "smartcam/stats") as subscriber, running(pipeline):
        wait_for(lambda: len(subscriber.payloads("smartcam/stats")) >= 4, "stats on a timer")
        assert pipeline.stats.processed <= 1  # one frame, then none for 5 s
    stats = json.loads(subscriber.payloads("smartcam/stats")[-1])
    assert {"fps", "inference_ms", "dropped", "captured", "processed", "uptime_s"} <= set(stats)
    assert (stats["camera"], stats["pipeline"]) == ("cam0", "pets") and stats["model"].endswith(".tflite")
    assert stats["processed"] == 1 and stats["inference_ms"]["p50"] > 0 and stats["uptime_s"] >= 0.9


def test_a_dead_broker_slows_nothing_and_the_state_is_back_when_it_returns(tmp_path, broker, cat_clip):
    labels = sorted(CAT_BREEDS)
    pipeline, _ = mqtt_pipeline(tmp_path, f"mqtt.port={broker.port}", "mqtt.publish_results=true",
                                f"camera.source={cat_clip}", "camera.realtime=true", "camera.loop=true",
                                labels=labels)
    with running(pipeline) as thread:
        with subscribed(broker.port) as subscriber:
            wait_for(lambda: subscriber.payloads("smartcam/cam0/results"), "results")
        up = processed_per_second(pipeline)
        broker.kill()
        down = processed_per_second(pipeline)
        assert up > 0 and down >= up / 2, (up, down)

        broker.start()  # same port, no retained messages: only a republish brings them back
        with subscribed(broker.port) as watcher:  # the republish, as it happens
            wait_for(lambda: watcher.payloads("smartcam/availability") == [b"online"]
                     and all(watcher.payloads(f"smartcam/cam0/{label}") for label in labels),
                     "the camera reconnecting and republishing its state")
        with subscribed(broker.port) as newcomer:  # subscribes after it: gets the state only if it was retained
            wait_for(lambda: newcomer.payloads("smartcam/availability", retained=True) == [b"online"]
                     and all(newcomer.payloads(f"smartcam/cam0/{label}", retained=True) for label in labels),
                     "the retained availability and counts after the broker restarted")
            wait_for(lambda: newcomer.payloads("smartcam/cam0/results"), "results flowing again")
        assert thread.is_alive()


def test_a_hung_broker_slows_nothing_and_holds_a_bounded_backlog(tmp_path, broker):
    """A broker that stops answering keeps the socket open: nothing errors, acknowledgements just stop coming."""
    pipeline, publisher = mqtt_pipeline(tmp_path, f"mqtt.port={broker.port}", "mqtt.publish_results=true",
                                        "mqtt.outbox_size=5", *PATTERN, labels=["Bengal"])
    with running(pipeline) as thread:
        with subscribed(broker.port) as subscriber:
            wait_for(lambda: subscriber.payloads("smartcam/cam0/results"), "results")
            up = processed_per_second(pipeline)
            broker.process.send_signal(signal.SIGSTOP)
            try:
                hung = processed_per_second(pipeline, 3.0)
                assert up > 0 and hung >= up / 2, (up, hung)
                wait_for(lambda: pipeline.stats.drops["mqtt_outbox"] > 0, "the outbox dropping its oldest")
                assert publisher.queued <= 5
                pipeline.stop()
                thread.join(5)
                assert not thread.is_alive(), "a hung broker held up the shutdown"
            finally:
                broker.process.send_signal(signal.SIGCONT)


def test_the_outbox_is_bounded_when_there_is_no_broker(tmp_path, cat_clip):
    pipeline, publisher = mqtt_pipeline(tmp_path, f"mqtt.port={free_port()}", "mqtt.publish_results=true",
                                        "mqtt.outbox_size=10", f"camera.source={cat_clip}")
    started = time.monotonic()
    stats = pipeline.run(max_frames=40)
    assert time.monotonic() - started < 30
    assert stats.processed == 40
    assert publisher.queued == 10
    assert stats.drops["mqtt_outbox"] >= 30


def test_credentials_come_from_the_environment(tmp_path, monkeypatch):
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "camera", "s3cret"], check=True)
    secured = Broker(tmp_path, free_port(), f"allow_anonymous false\npassword_file {passwords}\n")
    secured.start()
    config = tmp_path / "config.yaml"
    config.write_text(f"mqtt:\n  host: 127.0.0.1\n  port: {secured.port}\n"
                      "  username: ${SMARTCAM_MQTT_USER}\n  password: ${SMARTCAM_MQTT_PASSWORD}\n")
    monkeypatch.setenv("SMARTCAM_MQTT_USER", "camera")
    try:
        with subscribed(secured.port, username="camera", password="s3cret") as subscriber:
            monkeypatch.setenv("SMARTCAM_MQTT_PASSWORD", "s3cret")
            pipeline, _ = mqtt_pipeline(tmp_path, *PATTERN, config=config)
            with running(pipeline):
                wait_for(lambda: subscriber.payloads("smartcam/availability") == [b"online"], "the camera online")

            monkeypatch.setenv("SMARTCAM_MQTT_PASSWORD", "wrong")
            pipeline, _ = mqtt_pipeline(tmp_path, *PATTERN, "mqtt.topic_prefix=refused", config=config)
            with running(pipeline):
                wait_for(lambda: pipeline.stats.processed >= 15, "the pipeline running without the broker")
            assert subscriber.topics("refused/") == []
    finally:
        secured.kill()


def make_certificates(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    files = {name: directory / f"{name}.pem" for name in ("ca", "ca_key", "server", "server_key")}
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for command in (
        f"req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=smartcam-test-ca -keyout {files['ca_key']} "
        f"-out {files['ca']}",
        f"req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout {files['server_key']} -out {directory}/server.csr",
        f"x509 -req -days 1 -in {directory}/server.csr -CA {files['ca']} -CAkey {files['ca_key']} -CAcreateserial "
        f"-extfile {directory}/san.ext -out {files['server']}",
    ):
        subprocess.run(["openssl", *command.split()], check=True, capture_output=True)
    return files


def test_tls_checks_the_server_certificate_unless_told_not_to(tmp_path, caplog):
    files = make_certificates(tmp_path)
    secured = Broker(tmp_path, free_port(), f"allow_anonymous true\ncafile {files['ca']}\n"
                                            f"certfile {files['server']}\nkeyfile {files['server_key']}\n")
    secured.start()
    base = ("mqtt.tls.enabled=true", f"mqtt.port={secured.port}", *PATTERN)
    try:
        with subscribed(secured.port, ca=str(files["ca"])) as subscriber:
            for prefix, option in (("trusted", f"mqtt.tls.ca={files['ca']}"), ("insecure", "mqtt.tls.insecure=true")):
                pipeline, _ = mqtt_pipeline(tmp_path, *base, f"mqtt.topic_prefix={prefix}", option)
                with running(pipeline):
                    wait_for(lambda: subscriber.payloads(f"{prefix}/availability") == [b"online"], f"{prefix} online")

            pipeline, _ = mqtt_pipeline(tmp_path, *base, "mqtt.topic_prefix=untrusted")  # the system's CAs only
            with running(pipeline):
                wait_for(lambda: pipeline.stats.processed >= 30, "the pipeline running without the broker")
            assert subscriber.topics("untrusted/") == []
            warnings = [r for r in caplog.records if r.name == "app.publishers.mqtt" and r.levelname == "WARNING"]
            assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()  # once, not per attempt
    finally:
        secured.kill()
