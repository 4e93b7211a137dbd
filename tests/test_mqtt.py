"""MQTT against a real mosquitto: topics and payloads, Home Assistant discovery, stats on a timer, a broker that
dies or hangs and comes back, the bounded outbox, credentials from the environment, and TLS. Every test runs the
real pipeline with the pet model."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from app import __version__
from app.config import load_settings
from app.pipeline import Pipeline
from app.outputs.mqtt import MqttPublisher
from app.outputs.mqtt import discovery as mqtt_discovery
from conftest import (CAT_BREEDS, Background, Broker, Collector, free_port, make_certificates, pet_pipeline, subscribed,
                      wait_for)


RESULT_KEYS = {"pipeline", "source", "seq", "ts", "stamp", "size", "detections", "timing_ms"}
#: the topics of the instance under test (camera cam0, pipeline pets) start here; its Home Assistant node, and its
#: device discovery topic
BASE, NODE = "smartcam/cam0/pets", "smartcam_cam0_pets"
DEVICE = f"homeassistant/device/{NODE}/config"
PATTERN = ("camera.source=pattern", "camera.width=320", "camera.height=240", "camera.fps=10")


def pets(tmp_path: Path, labels: list[str] | None) -> Path:
    """The pipeline `pets`: the pet detector with a publish block watching `labels`."""
    return pet_pipeline(tmp_path, "pets", postprocess={"min_score": 0.5}, publish={"labels": labels},
                        description="cats and dogs, for the MQTT tests")


def mqtt_pipeline(tmp_path: Path, *overrides: str, labels: list[str] | None = None,
                  config: Path | None = None) -> tuple[Pipeline, MqttPublisher]:
    """The pets pipeline with the MQTT publisher, followed in the output lane by a Collector (what got past it)."""
    settings = load_settings(str(pets(tmp_path, labels)), config, ["mqtt.host=127.0.0.1", *overrides])
    publisher = MqttPublisher(settings.device.mqtt)
    return Pipeline(settings, [publisher, Collector()]), publisher


def processed_per_second(pipeline: Pipeline, seconds: float = 2.0) -> float:
    """Frames per second through the whole output lane (past the MQTT publisher), none lost on the way to it."""
    delivered = pipeline.outputs.publishers[-1]
    assert isinstance(delivered, Collector)
    before, started = delivered.count, time.monotonic()
    time.sleep(seconds)
    assert pipeline.stats.drops["output_full"] == 0, "the output lane fell behind"
    return (delivered.count - before) / (time.monotonic() - started)


def test_events_counts_snapshot_discovery_and_availability(tmp_path, broker, cat_clip):
    """No watched labels: every label gets its count topic and Home Assistant entities as it first appears."""
    pipeline, _ = mqtt_pipeline(tmp_path, f"mqtt.port={broker.port}", f"camera.source={cat_clip}",
                                "camera.realtime=true", "camera.loop=true")
    with subscribed(broker.port) as live:
        with Background(pipeline):
            wait_for(lambda: live.payloads(f"{BASE}/events") and live.payloads(f"{BASE}/snapshot"),
                     "an event and a snapshot")
            label = json.loads(live.payloads(f"{BASE}/events")[0])["label"]

            def device_with_label(subscriber) -> dict | None:
                documents = [json.loads(p) for p in subscriber.payloads(DEVICE, retained=True)]
                return documents[-1] if documents and f"{label}_count" in documents[-1]["components"] else None

            with subscribed(broker.port) as fresh:  # a newcomer gets the retained state
                wait_for(lambda: fresh.payloads(f"{BASE}/snapshot", retained=True) and device_with_label(fresh),
                         "the retained documents")
                device = device_with_label(fresh)
                assert device is not None
                assert fresh.payloads(f"{BASE}/availability", retained=True) == [b"online"]
                assert fresh.payloads(f"{BASE}/count/{label}", retained=True)[0].isdigit()
                assert fresh.payloads(f"{BASE}/snapshot", retained=True)[0][:2] == b"\xff\xd8"
                assert [t for t in fresh.discovery() if t != DEVICE] == []  # one document for the device
        wait_for(lambda: live.payloads(f"{BASE}/availability")[-1:] == [b"offline"], "offline after close")

    event = json.loads(live.payloads(f"{BASE}/events")[0])
    assert event["type"] == "appeared" and event["label"] in CAT_BREEDS and event["previous"] == 0
    assert event["count"] >= 1 and (event["camera"], event["pipeline"]) == ("cam0", "pets")
    assert set(event["result"]) >= RESULT_KEYS and event["result"]["size"] == [1280, 720]
    assert event["label"] in {d["label"] for d in event["result"]["detections"]}
    assert live.payloads(f"{BASE}/availability")[0] == b"online"

    sensor, occupancy, image = (device["components"][o] for o in (f"{label}_count", f"{label}_occupancy", "snapshot"))
    assert sensor["platform"] == "sensor" and sensor["state_class"] == "measurement"
    assert sensor["state_topic"] == f"{BASE}/count/{label}"
    assert sensor["unique_id"] == f"{NODE}_{label}_count" and sensor["name"] == f"{label} count"
    assert occupancy["platform"] == "binary_sensor" and occupancy["device_class"] == "occupancy"
    assert occupancy["state_topic"] == f"{BASE}/count/{label}"
    assert occupancy["value_template"] == "{{ 'ON' if value | int(0) > 0 else 'OFF' }}"  # an emptied count: OFF
    assert image["platform"] == "image" and image["image_topic"] == f"{BASE}/snapshot"
    assert image["content_type"] == "image/jpeg" and image["name"] == "snapshot"
    assert device["availability"] == [{"topic": f"{BASE}/availability"}, {"topic": f"{BASE}/source"}]
    assert device["availability_mode"] == "all"  # the instance online and its camera delivering
    assert device["device"] == {"identifiers": [NODE], "name": "smartcam cam0 pets", "model": "smartcam",
                                "sw_version": __version__}
    assert device["origin"] == {"name": "smartcam", "sw_version": __version__}


def test_object_events_zone_and_line_counts_and_their_entities(tmp_path, broker, two_pets_clip):
    """With tracking: object events on {base}/objects, the zone's count and the line's crossings as retained state,
    and an event entity and their sensors in the device document."""
    config = tmp_path / "config.yaml"
    config.write_text(f"""
camera:
  source: {two_pets_clip}
  realtime: true
  zones: {{middle: {{polygon: [[0.4, 0], [0.6, 0], [0.6, 0.7], [0.4, 0.7]]}}}}
  lines: {{gate: {{from: [0.7, 0], to: [0.7, 0.7]}}}}
mqtt: {{enabled: true, host: 127.0.0.1, port: {broker.port}}}
""")
    pet_pipeline(tmp_path, "pets", postprocess={"min_score": 0.3}, track={"stationary_s": 1.0})
    settings = load_settings(str(tmp_path / "pets.yaml"), config)
    with subscribed(broker.port) as live:
        Pipeline(settings, [MqttPublisher(settings.device.mqtt)]).run()
        wait_for(lambda: live.payloads(f"{BASE}/availability")[-1:] == [b"offline"], "offline after the run")
        objects = [json.loads(p) for p in live.payloads(f"{BASE}/objects")]
        with subscribed(broker.port) as fresh:
            wait_for(lambda: fresh.payloads(f"{BASE}/lines/gate/in", retained=True) and fresh.payloads(DEVICE,
                     retained=True), "the retained state")
            assert fresh.payloads(f"{BASE}/lines/gate/in", retained=True) == [b"1"]
            assert fresh.payloads(f"{BASE}/lines/gate/out", retained=True) == [b"0"]
            assert fresh.payloads(f"{BASE}/zones/middle/count", retained=True) == [b"0"]  # both gone: ended
            device = json.loads(fresh.payloads(DEVICE, retained=True)[-1])
    assert sorted(e["type"] for e in objects if e["type"] != "update") == ["end", "end", "new", "new"]
    assert [c for e in objects for c in e.get("changes", [])].count("crossed:gate:in") == 1
    # every message has what Home Assistant's event template reads (a real Home Assistant dropped new and end
    # events while they had no `changes`)
    assert all(set(e) >= {"type", "track_id", "label", "zones", "changes"} for e in objects)
    assert all((e["camera"], e["pipeline"]) == ("cam0", "pets") for e in objects)
    event = device["components"]["objects"]
    assert event["platform"] == "event" and event["state_topic"] == f"{BASE}/objects"
    assert event["event_types"] == ["new", "update", "end", "person_down"] and "event_type" in event["value_template"]
    zone = device["components"]["zone_middle_count"]
    assert zone["platform"] == "sensor" and zone["state_topic"] == f"{BASE}/zones/middle/count"
    crossings = device["components"]["line_gate_in"]
    assert crossings["state_topic"] == f"{BASE}/lines/gate/in" and crossings["state_class"] == "total_increasing"


def test_discovery_is_sent_again_when_home_assistant_comes_online(tmp_path, broker, monkeypatch):
    monkeypatch.setattr(mqtt_discovery, "BIRTH_DELAY_MAX_S", 0.0)  # answered at once
    pipeline, _ = mqtt_pipeline(tmp_path, f"mqtt.port={broker.port}", *PATTERN, labels=["Bengal", "beagle"])
    with subscribed(broker.port, "homeassistant/#") as home_assistant, Background(pipeline):
        wait_for(lambda: home_assistant.discovery() == [DEVICE], "the device document")
        home_assistant.client.publish("homeassistant/status", "online", qos=1)
        wait_for(lambda: home_assistant.discovery() == [DEVICE] * 2, "the device document again")
        assert len(json.loads(home_assistant.payloads(DEVICE)[-1])["components"]) == 5


def test_entity_mode_publishes_one_document_per_entity(tmp_path, broker):
    """For Home Assistant before 2024.11: the same entities, each at its own topic, and no device document."""
    pipeline, _ = mqtt_pipeline(tmp_path, f"mqtt.port={broker.port}", *PATTERN, "mqtt.discovery.mode=entity",
                                labels=["Bengal"])
    configs = {f"homeassistant/sensor/{NODE}/Bengal_count/config",
               f"homeassistant/binary_sensor/{NODE}/Bengal_occupancy/config",
               f"homeassistant/image/{NODE}/snapshot/config"}
    with subscribed(broker.port, "homeassistant/#") as home_assistant, Background(pipeline):
        wait_for(lambda: set(home_assistant.discovery()) == configs, "the per-entity documents")
        sensor = json.loads(home_assistant.payloads(f"homeassistant/sensor/{NODE}/Bengal_count/config")[0])
    assert sensor["name"] == "Bengal count" and sensor["state_topic"] == f"{BASE}/count/Bengal"
    assert sensor["device"]["identifiers"] == [NODE] and sensor["availability_mode"] == "all"
    assert sensor["availability"] == [{"topic": f"{BASE}/availability"}, {"topic": f"{BASE}/source"}]


def test_stats_keep_coming_when_frames_stop(tmp_path, broker):
    pipeline, _ = mqtt_pipeline(tmp_path, f"mqtt.port={broker.port}", "mqtt.stats_interval_s=0.3",
                                "camera.source=pattern", "camera.width=320", "camera.height=240", "camera.fps=0.2")
    with subscribed(broker.port, f"{BASE}/stats") as subscriber, Background(pipeline):
        wait_for(lambda: len(subscriber.payloads(f"{BASE}/stats")) >= 4, "stats on a timer")
        assert pipeline.stats.processed <= 1  # one frame, then none for 5 s
    stats = json.loads(subscriber.payloads(f"{BASE}/stats")[-1])
    assert {"fps", "inference_ms", "dropped", "captured", "processed", "uptime_s"} <= set(stats)
    assert (stats["camera"], stats["pipeline"]) == ("cam0", "pets") and stats["model"].endswith(".tflite")
    assert stats["processed"] == 1 and stats["inference_ms"]["p50"] > 0 and stats["uptime_s"] >= 0.9


def test_a_dead_broker_slows_nothing_and_the_state_is_back_when_it_returns(tmp_path, broker, cat_clip):
    labels = sorted(CAT_BREEDS)
    pipeline, _ = mqtt_pipeline(tmp_path, f"mqtt.port={broker.port}", "mqtt.publish_results=true",
                                f"camera.source={cat_clip}", "camera.realtime=true", "camera.loop=true",
                                labels=labels)
    with Background(pipeline) as run:
        with subscribed(broker.port) as subscriber:
            wait_for(lambda: subscriber.payloads(f"{BASE}/results"), "results")
        up = processed_per_second(pipeline)
        broker.kill()
        down = processed_per_second(pipeline)
        assert up > 0 and down >= up / 2, (up, down)

        broker.start()  # same port, no retained messages: only a republish brings them back
        with subscribed(broker.port) as watcher:  # the republish, as it happens
            wait_for(lambda: watcher.payloads(f"{BASE}/availability") == [b"online"]
                     and all(watcher.payloads(f"{BASE}/count/{label}") for label in labels),
                     "the camera reconnecting and republishing its state")
        with subscribed(broker.port) as newcomer:  # subscribes after it: gets the state only if it was retained
            wait_for(lambda: newcomer.payloads(f"{BASE}/availability", retained=True) == [b"online"]
                     and all(newcomer.payloads(f"{BASE}/count/{label}", retained=True) for label in labels),
                     "the retained availability and counts after the broker restarted")
            wait_for(lambda: newcomer.payloads(f"{BASE}/results"), "results flowing again")
        assert run.alive


def test_a_hung_broker_slows_nothing_and_holds_a_bounded_backlog(tmp_path, broker):
    """A broker that stops answering keeps the socket open: nothing errors, acknowledgements just stop coming."""
    pipeline, publisher = mqtt_pipeline(tmp_path, f"mqtt.port={broker.port}", "mqtt.publish_results=true",
                                        "mqtt.outbox_size=5", *PATTERN, labels=["Bengal"])
    with Background(pipeline) as run, subscribed(broker.port) as subscriber:
        wait_for(lambda: subscriber.payloads(f"{BASE}/results"), "results")
        up = processed_per_second(pipeline)
        broker.process.send_signal(signal.SIGSTOP)
        try:
            hung = processed_per_second(pipeline, 3.0)
            assert up > 0 and hung >= up / 2, (up, hung)
            wait_for(lambda: pipeline.stats.drops["mqtt_outbox"] > 0, "the outbox dropping its oldest")
            assert publisher.queued <= 5
            run.stop(timeout=5)  # a hung broker must not hold up the shutdown
        finally:
            broker.process.send_signal(signal.SIGCONT)


def test_the_outbox_is_bounded_when_there_is_no_broker(tmp_path, cat_clip):
    """Missing broker or not, the run takes about as long as the same run without MQTT, and holds 10 messages."""
    baseline = Pipeline(load_settings(str(pets(tmp_path, None)), None, [f"camera.source={cat_clip}"]), [Collector()])
    started = time.monotonic()
    assert baseline.run(max_frames=40).processed == 40
    without_mqtt = time.monotonic() - started

    pipeline, publisher = mqtt_pipeline(tmp_path, f"mqtt.port={free_port()}", "mqtt.publish_results=true",
                                        "mqtt.outbox_size=10", f"camera.source={cat_clip}")
    started = time.monotonic()
    stats = pipeline.run(max_frames=40)
    with_mqtt = time.monotonic() - started
    assert with_mqtt <= 2 * without_mqtt + 5, (with_mqtt, without_mqtt)  # blocking on it: seconds per message
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
            with Background(pipeline):
                wait_for(lambda: subscriber.payloads(f"{BASE}/availability") == [b"online"], "the camera online")

            monkeypatch.setenv("SMARTCAM_MQTT_PASSWORD", "wrong")
            pipeline, _ = mqtt_pipeline(tmp_path, *PATTERN, "mqtt.topic_prefix=refused", config=config)
            with Background(pipeline):
                wait_for(lambda: pipeline.stats.processed >= 15, "the pipeline running without the broker")
            assert subscriber.topics("refused/") == []
    finally:
        secured.kill()


def test_tls_checks_the_server_certificate_unless_told_not_to(tmp_path, caplog):
    files = make_certificates(tmp_path)
    secured = Broker(tmp_path, free_port(), f"allow_anonymous true\ncafile {files['ca']}\n"
                                            f"certfile {files['server']}\nkeyfile {files['server_key']}\n")
    secured.start()
    base = ("mqtt.tls.enabled=true", f"mqtt.port={secured.port}", *PATTERN)
    try:
        with subscribed(secured.port, ca=str(files["ca"])) as subscriber:
            def comes_online(prefix: str, option: str) -> None:
                pipeline, _ = mqtt_pipeline(tmp_path, *base, f"mqtt.topic_prefix={prefix}", option)
                with Background(pipeline):
                    wait_for(lambda: subscriber.payloads(f"{prefix}/cam0/pets/availability") == [b"online"],
                             f"{prefix} online")

            comes_online("trusted", f"mqtt.tls.ca={files['ca']}")
            comes_online("insecure", "mqtt.tls.insecure=true")

            pipeline, publisher = mqtt_pipeline(tmp_path, *base, "mqtt.topic_prefix=untrusted")  # the system's CAs
            with Background(pipeline):
                wait_for(lambda: pipeline.stats.processed >= 30, "the pipeline running without the broker")
                wait_for(lambda: "not trusted" in str(publisher.health()["last_error"]), "the cause in the health")
            assert subscriber.topics("untrusted/") == []
            warnings = [r for r in caplog.records if r.name == "app.outputs.mqtt" and r.levelname == "WARNING"]
            assert len(warnings) == 1, warnings  # once, not per attempt, and with the cause
            assert warnings[0].getMessage().startswith(f"MQTT broker 127.0.0.1:{secured.port} unreachable: its TLS "
                                                       "certificate is not trusted: ")
    finally:
        secured.kill()
