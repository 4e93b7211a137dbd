"""Teach in the run's numbers and on the broker, with the real models (YOLOv8n, MobileNet v2 cut at its pooled
features) and a real mosquitto: the detections dropped as `--not` counted in /api/stats' document, MQTT stats and
/metrics (and going on when a camera is rebuilt); a sensor per taught name counting the objects in view carrying
it, announced at the start with 0, and removed (its count emptied after the discovery) once the name is forgotten.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from app.config import OverlayParams, Settings, load_settings
from app.frame import Frame
from app.names import safe_name
from app.outputs.base import Output
from app.outputs.mqtt import MqttPublisher, Topics
from app.outputs.mqtt import discovery as mqtt_discovery
from app.outputs.mqtt.clean import plan, removals
from app.pipeline import Pipeline
from app.teach.run import taught_names
from conftest import IMAGES, Broker, app, imread, subscribed, wait_for
from mqtt_instances import discovery, retained, retained_once
from teach_helpers import Run, embedder_fixture, pan, pipeline_fixture, teach  # noqa: F401 (fixtures)


def on_broker(pipeline: Path, gallery: Path, broker: Broker, *overrides: str) -> Settings:
    return load_settings(str(pipeline), None, [f"teach.gallery={gallery}", "mqtt.host=127.0.0.1",
                                               f"mqtt.port={broker.port}", *overrides])


def topics_of(settings: Settings) -> Topics:
    return Topics("smartcam", "cam0", "homeassistant", safe_name(settings.pipeline.name))


def published(frame: Frame) -> Output:
    return Output(frame, frame.result("teach"), [], {}, OverlayParams(), 0.0)


def test_detections_taught_not_are_counted_in_the_stats_mqtt_stats_and_metrics(tmp_path, broker, pipeline):
    """"grace_hopper.bmp is not a person", then a camera on that photo: her detection is dropped on every frame,
    counted as `detections_dropped: {taught_not}` (not a frame drop: every frame was processed), in the document
    /api/stats and MQTT stats send (seen on `{base}/stats`) and as smartcam_detections_dropped_total in /metrics. A
    camera rebuilt with its stats goes on counting from there."""
    gallery = tmp_path / "gallery.json"
    teach(gallery, pipeline, "--not", IMAGES / "grace_hopper.bmp", "--label", "person")
    settings = on_broker(pipeline, gallery, broker, f"camera.source={IMAGES / 'grace_hopper.bmp'}", "camera.loop=true",
                         "mqtt.stats_interval_s=0.05")
    stats_topic = topics_of(settings).stats

    def sent_taught_not(watcher) -> list[int]:
        return [json.loads(p)["detections_dropped"]["taught_not"] for p in watcher.payloads(stats_topic)]
    with subscribed(broker.port, stats_topic) as watcher:
        stats = Pipeline(settings, [MqttPublisher(settings.device.mqtt)]).run(max_frames=8)
        wait_for(lambda: [n for n in sent_taught_not(watcher) if n > 0], "a stats message counting taught_not")
    assert stats.processed == 8 and "taught_not" not in stats.drops
    assert stats.document()["detections_dropped"] == {"taught_not": 8}
    assert 'smartcam_detections_dropped_total{reason="taught_not"} 8\n' in stats.prometheus()
    assert set(sent_taught_not(watcher)) <= set(range(9))
    Pipeline(settings, [], stats=stats).run(max_frames=12)  # rebuilt after a failure: its counts go on
    assert stats.document()["detections_dropped"] == {"taught_not": 12}


def name_announced(topics: Topics, name: str):
    def check(held: dict[str, bytes]) -> bool:
        components = discovery(held).get(topics.device_discovery, {}).get("components", {})
        return f"name_{name}_count" in components and topics.name(name) in held
    return check


def test_a_taught_name_is_a_sensor_of_the_objects_in_view_carrying_it(tmp_path, broker, start, pipeline):
    """grace taught (and a `--not` cat, which gets no sensor): her count sensor is announced at the start on the
    camera's device, with its availability, at 0; a pan over grace_hopper.bmp makes it 1 (one person, never 2),
    and kite_and_cold.jpg's people, none of them grace, bring it back to 0."""
    gallery = tmp_path / "gallery.json"
    teach(gallery, pipeline, "grace", IMAGES / "grace_hopper.bmp", "--label", "person")
    teach(gallery, pipeline, "--not", IMAGES / "cat_720p.jpg", "--label", "cat")
    settings = on_broker(pipeline, gallery, broker)
    topics = topics_of(settings)
    with subscribed(broker.port, topics.name("grace")) as watcher:
        instance = start(settings)
        held = retained_once(broker.port, name_announced(topics, "grace"), "grace's sensor and count")
        assert held[topics.name("grace")] == b"0"
        device = discovery(held)[topics.device_discovery]
        assert [o for o in device["components"] if o.startswith("name_")] == ["name_grace_count"]
        assert device["components"]["name_grace_count"] == {
            "platform": "sensor", "name": "grace count", "unique_id": f"{topics.node}_name_grace_count",
            "state_topic": f"{topics.base}/name/grace", "state_class": "measurement"}
        assert device["availability"] == [{"topic": topics.availability}, {"topic": topics.source}]
        run = Run(pipeline, gallery)
        for frame in run.frames(pan(imread(IMAGES / "grace_hopper.bmp"), frames=20, keep=0.8)):
            instance.publisher.publish(published(frame))
        wait_for(lambda: watcher.payloads(topics.name("grace"))[-1:] == [b"1"], "grace counted")
        kite = run.frames(iter([imread(IMAGES / "kite_and_cold.jpg")] * 20))
        for frame in kite:
            instance.publisher.publish(published(frame))
        wait_for(lambda: watcher.payloads(topics.name("grace"))[-1:] == [b"0"], "grace's count back to 0")
    assert set(watcher.payloads(topics.name("grace"))) == {b"0", b"1"}
    assert sum(d.label == "person" for d in kite[-1].detections) >= 3  # people in view, none of them grace
    assert retained(broker.port)[topics.name("grace")] == b"0"


def test_a_pipeline_without_a_crop_stage_announces_no_names(tmp_path, pipeline):
    """Its runs give no names, whatever the gallery holds: no sensor stuck at 0."""
    gallery = tmp_path / "gallery.json"
    teach(gallery, pipeline, "grace", IMAGES / "grace_hopper.bmp", "--label", "person")
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({"stages": yaml.safe_load(pipeline.read_text())["stages"][:4]}))
    assert taught_names(load_settings(str(pipeline), None, [f"teach.gallery={gallery}"])) == ("grace",)
    assert taught_names(load_settings(str(plain), None, [f"teach.gallery={gallery}"])) == ()


def test_a_name_forgotten_loses_its_sensor_at_the_next_start_and_mqtt_clean_takes_a_gone_instance_s(
        tmp_path, broker, start, pipeline, monkeypatch):
    """`teach remove grace`, then a restart: her sensor leaves the device document and her count is emptied after
    it (Home Assistant has unloaded the entity by then); `mqtt clean` empties an old instance's name counts with
    the rest of its state, after its discovery."""
    monkeypatch.setattr(mqtt_discovery, "REMOVAL_GRACE_S", 0.5)
    gallery = tmp_path / "gallery.json"
    teach(gallery, pipeline, "grace", IMAGES / "grace_hopper.bmp", "--label", "person")
    settings = on_broker(pipeline, gallery, broker)
    topics = topics_of(settings)
    first = start(settings)
    retained_once(broker.port, name_announced(topics, "grace"), "grace's sensor and count")
    first.stop()
    assert app("teach", "remove", "grace", "--gallery", gallery).returncode == 0
    with subscribed(broker.port) as watcher:
        start(settings)
        wait_for(lambda: watcher.payloads(topics.name("grace"), retained=False) == [b""], "grace's count emptied")
        documents = [json.loads(p)["components"] for p in watcher.payloads(topics.device_discovery, retained=False)
                     if p]
    assert "name_grace_count" not in documents[-1]
    held = retained(broker.port)
    assert topics.name("grace") not in held
    assert "name_grace_count" not in discovery(held)[topics.device_discovery]["components"]

    gone = {topics.availability: b"offline", topics.name("grace"): b"1", topics.device_discovery: b"{}"}
    config = load_settings("detect", None, []).device.mqtt
    first_emptied, then = removals(plan(gone, config, ["cam1"], ["detect"], host="pi"))
    assert first_emptied == [topics.device_discovery] and then == [topics.name("grace"), topics.availability]


@pytest.fixture(autouse=True)
def no_birth_delay(monkeypatch):
    """Home Assistant's birth is answered at once."""
    monkeypatch.setattr(mqtt_discovery, "BIRTH_DELAY_MAX_S", 0.0)
