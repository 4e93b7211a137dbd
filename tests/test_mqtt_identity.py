"""MQTT identity and health against a real mosquitto: two instances (one camera, pipelines `detect` and `face`,
one config) share a broker without taking each other's connection, availability or Home Assistant device; the
retained discovery an instance no longer publishes is emptied; a hung broker is noticed, logged once, and the
recovery seen. The publishers run without a pipeline: what is tested is their connection and their topics."""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from app.config import Settings, load_settings
from app.metrics import Stats
from app.publishers.base import PublishContext
from app.publishers.mqtt import MAX_CLIENT_ID, MqttPublisher, default_client_id
from conftest import Broker, Subscriber, pet_pipeline, wait_for

LOGGER = "app.publishers.mqtt"


def settings(tmp_path: Path, broker: Broker, pipeline: str, labels: list[str] | None, *overrides: str) -> Settings:
    """One config for every instance (camera cam0 on `broker`); `pipeline` names the pipeline file."""
    path = pet_pipeline(tmp_path, pipeline, publish={"labels": labels}, description=f"{pipeline}, for a test")
    return load_settings(str(path), None, ["mqtt.host=127.0.0.1", f"mqtt.port={broker.port}", *overrides])


class Instance:
    """A started MQTT publisher, as one running smartcam has it; `stop()` closes it (once)."""

    def __init__(self, settings: Settings) -> None:
        self.stats = Stats()
        self.publisher = MqttPublisher(settings.device.mqtt)
        self.publisher.start(PublishContext(settings, self.stats, settings.pipeline.publish))
        self.stopped = False

    def health(self) -> dict:
        return self.publisher.health()

    def connected(self) -> bool:
        return self.health()["state"] == "connected"

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.publisher.close(time.monotonic() + 5)


@pytest.fixture
def start() -> Iterator:
    """`start(settings)` starts an Instance; every one still running is stopped at the end."""
    instances: list[Instance] = []

    def started(settings: Settings) -> Instance:
        instance = Instance(settings)
        instances.append(instance)
        return instance

    yield started
    for instance in instances:
        instance.stop()


def retained(port: int, topic_filter: str = "#") -> dict[str, bytes]:
    """What the broker holds retained under `topic_filter` now, read by a fresh client: it subscribes, then
    publishes a marker to itself, which the broker delivers after every retained message of the subscription."""
    marker = f"test-marker/{uuid.uuid4().hex}"
    held: dict[str, bytes] = {}
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == marker:
            done.set()
        elif message.retain:
            held[message.topic] = bytes(message.payload)

    client.on_connect = lambda client, *_: client.subscribe([(topic_filter, 1), (marker, 1)])
    client.on_subscribe = lambda client, *_: client.publish(marker, b"-", qos=1)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10), "the broker did not echo the marker"
    finally:
        client.disconnect()
        client.loop_stop()
    return held


def retained_once(port: int, check: Callable[[dict[str, bytes]], bool], what: str) -> dict[str, bytes]:
    """The retained messages as soon as `check` finds them as it should be (read again until then)."""
    def held_if_ready() -> dict[str, bytes] | None:
        held = retained(port)
        return held if check(held) else None

    return wait_for(held_if_ready, what)


def discovery(held: dict[str, bytes]) -> dict[str, dict]:
    """The retained Home Assistant discovery documents by topic."""
    return {topic: json.loads(payload) for topic, payload in held.items()
            if topic.startswith("homeassistant/") and topic.endswith("/config")}


def test_two_pipelines_on_one_camera_keep_their_own_connection_availability_and_device(tmp_path, broker, start):
    detect = start(settings(tmp_path, broker, "detect", ["Bengal"]))
    face = start(settings(tmp_path, broker, "face", ["Bengal"]))  # the same label: still two sets of entities
    wait_for(lambda: detect.connected() and face.connected(),
             lambda: f"both instances connected: {detect.health()}, {face.health()}")
    time.sleep(3)  # a shared client id has the broker close one for the other about once a second

    assert (detect.health()["connections"], face.health()["connections"]) == (1, 1)
    assert "already connected" not in broker.log.read_text()
    assert detect.publisher.client_id != face.publisher.client_id
    assert detect.publisher.client_id == default_client_id("cam0", "detect")

    held = retained_once(broker.port, lambda held: len(discovery(held)) == 2 * 3, "both instances' discovery")
    assert held["smartcam/cam0/detect/availability"] == b"online"
    assert held["smartcam/cam0/face/availability"] == b"online"
    assert held["smartcam/cam0/detect/count/Bengal"] == held["smartcam/cam0/face/count/Bengal"] == b"0"
    documents = discovery(held).values()
    devices = {d["availability_topic"]: d["device"]["identifiers"][0] for d in documents}
    assert devices == {"smartcam/cam0/detect/availability": "smartcam_cam0_detect",
                       "smartcam/cam0/face/availability": "smartcam_cam0_face"}
    assert len({d["unique_id"] for d in documents}) == 6
    assert {d["device"]["name"] for d in documents} == {"smartcam cam0 detect", "smartcam cam0 face"}

    face.stop()
    held = retained(broker.port, "smartcam/#")
    assert held["smartcam/cam0/face/availability"] == b"offline"
    assert held["smartcam/cam0/detect/availability"] == b"online"
    assert detect.connected()


def test_a_lost_connection_marks_only_its_own_instance_offline(tmp_path, broker, start):
    """The last will is per instance: the broker publishes it for the one that vanished, not for its neighbour."""
    detect = start(settings(tmp_path, broker, "detect", ["Bengal"]))
    face = start(settings(tmp_path, broker, "face", ["Bengal"]))
    wait_for(lambda: detect.connected() and face.connected(), "both instances connected")
    watcher = Subscriber(broker.port, "smartcam/+/+/availability")
    try:
        face.publisher._client.socket().shutdown(socket.SHUT_RDWR)  # gone without a DISCONNECT: the will fires
        wait_for(lambda: b"offline" in watcher.payloads("smartcam/cam0/face/availability"), "face's last will")
        wait_for(lambda: face.connected() and face.health()["connections"] == 2, "face reconnecting")
        wait_for(lambda: watcher.payloads("smartcam/cam0/face/availability")[-1:] == [b"online"], "face back online")
        assert b"offline" not in watcher.payloads("smartcam/cam0/detect/availability")
        assert retained(broker.port, "smartcam/#")["smartcam/cam0/detect/availability"] == b"online"
        assert detect.health()["connections"] == 1
        assert "connection lost" in face.health()["last_error"]
    finally:
        watcher.close()


def test_discovery_an_instance_no_longer_publishes_is_emptied_on_the_next_start(tmp_path, broker, start):
    def documents_after_a_run(labels: list[str], *overrides: str) -> dict[str, bytes]:
        instance = start(settings(tmp_path, broker, "detect", labels, *overrides))
        wait_for(instance.connected, "the instance connected")
        expected = 1 + 2 * len(labels) if "mqtt.discovery.enabled=false" not in overrides else 0
        held = retained_once(broker.port, lambda held: len(discovery(held)) == expected,
                             f"{expected} discovery documents")
        instance.stop()
        return held

    first = documents_after_a_run(["Bengal", "beagle"])
    beagle = {topic for topic in first if "beagle" in topic}
    assert beagle == {"homeassistant/sensor/smartcam_cam0_detect/beagle_count/config",
                      "homeassistant/binary_sensor/smartcam_cam0_detect/beagle_occupancy/config",
                      "smartcam/cam0/detect/count/beagle"}

    second = documents_after_a_run(["Bengal"])  # beagle is no longer watched: its documents and count go
    assert not beagle & set(second)
    assert "homeassistant/sensor/smartcam_cam0_detect/Bengal_count/config" in second

    third = documents_after_a_run(["Bengal"], "mqtt.discovery.enabled=false")  # no entities at all any more
    assert not discovery(third)
    assert third["smartcam/cam0/detect/count/Bengal"] == b"0"  # what it still publishes stays


def test_the_camera_discovery_of_the_shared_layout_is_removed_and_nobody_elses(tmp_path, broker, start):
    """What versions with one identity per camera retained (node smartcam_cam0, availability smartcam/availability)
    is emptied; another device's documents, and a document of this instance's kept by an all-labels run, stay."""
    old_sensor = "homeassistant/sensor/smartcam_cam0/Bengal_count/config"
    kept = {
        "homeassistant/sensor/other_device/x_count/config": {"availability_topic": "smartcam/availability"},
        "homeassistant/sensor/smartcam_cam0/y_count/config": {"availability_topic": "smartcam/cam0/y/availability"},
        "homeassistant/sensor/smartcam_cam0_detect/Persian_count/config":  # seen by the last all-labels run
            {"availability_topic": "smartcam/cam0/detect/availability",
             "state_topic": "smartcam/cam0/detect/count/Persian"},
    }
    seeder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    seeder.connect("127.0.0.1", broker.port)
    seeder.loop_start()
    try:
        for topic, document in {old_sensor: {"availability_topic": "smartcam/availability",
                                             "state_topic": "smartcam/cam0/Bengal"}, **kept}.items():
            seeder.publish(topic, json.dumps(document), qos=1, retain=True).wait_for_publish(5)
        seeder.publish("smartcam/cam0/Bengal", "2", qos=1, retain=True).wait_for_publish(5)
    finally:
        seeder.disconnect()
        seeder.loop_stop()

    instance = start(settings(tmp_path, broker, "detect", None))  # every label watched
    wait_for(instance.connected, "the instance connected")
    held = retained_once(broker.port, lambda held: old_sensor not in held, "the old layout's sensor emptied")
    assert "smartcam/cam0/Bengal" not in held  # with the count it showed
    assert set(kept) <= set(held)


def test_default_client_ids_name_host_camera_and_pipeline_and_stay_short():
    assert default_client_id("front door", "face", "pi4.local") == "smartcam-pi4-front_door-face"
    long = default_client_id("c" * 64, "detect", "h" * 63)
    assert len(long) == MAX_CLIENT_ID and long != default_client_id("c" * 64, "face", "h" * 63)


def test_a_hung_broker_is_noticed_logged_once_and_its_return_seen(tmp_path, broker, start, caplog):
    """SIGSTOP keeps the socket open: nothing errors, acknowledgements just stop. The publisher says
    `unresponsive` (its own check, half the keepalive), then paho's keepalive drops the connection; one warning for
    the whole outage, one info line when it is back."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    instance = start(settings(tmp_path, broker, "detect", ["Bengal"], "mqtt.keepalive_s=5",
                              "mqtt.stats_interval_s=0.2"))  # stats keep messages in flight
    wait_for(instance.connected, "the instance connected")
    assert instance.stats.document()["health"]["mqtt"]["state"] == "connected"
    assert 'smartcam_component_up{component="mqtt"} 1' in instance.stats.prometheus()

    seen: list[str] = []

    def state(wanted: str) -> bool:
        seen.append(instance.health()["state"])
        return seen[-1] == wanted

    broker.process.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: state("unresponsive"), lambda: f"unresponsive; states seen {sorted(set(seen))}", 30)
        assert "no acknowledgement" in instance.health()["last_error"]
        assert instance.stats.document()["health"]["mqtt"]["state"] == "unresponsive"
        assert 'smartcam_component_up{component="mqtt"} 0' in instance.stats.prometheus()
        assert 'smartcam_component_state{component="mqtt",state="unresponsive"} 1' in instance.stats.prometheus()
        wait_for(lambda: state("disconnected"), "paho's keepalive closing the connection", 30)
        health = instance.health()
        assert "Keep alive timeout" in health["last_error"] and health["outbox"] > 0
    finally:
        broker.process.send_signal(signal.SIGCONT)
    wait_for(instance.connected, lambda: f"reconnected after SIGCONT: {instance.health()}", 30)

    records = [r for r in caplog.records if r.name == LOGGER]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "stopped answering" in warnings[0], warnings
    back = [r.getMessage() for r in records if r.levelno == logging.INFO and "again after" in r.getMessage()]
    assert len(back) == 1, back
    assert seen.index("unresponsive") < seen.index("disconnected")
