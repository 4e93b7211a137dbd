"""What Home Assistant sees, against a real mosquitto: a camera that goes down makes its entities unavailable and they
come back with its frames; a removed entity's count is emptied only after the discovery no longer lists it; another
board publishing the same instance is said once on each side; `python -m app mqtt clean` removes what cameras and
pipelines no longer configured left retained, and keeps the rest."""

from __future__ import annotations

import logging
import math
import socket
import threading
from pathlib import Path

import pytest

from app.config import load_settings
from app.outputs.mqtt import MqttPublisher
from app.outputs.mqtt import discovery as mqtt_discovery
from app.outputs.mqtt.clean import plan, removals
from app.outputs.mqtt.state import RetainedState
from app.outputs.mqtt.topics import Message, Topics
from app.pipeline import Pipeline
from app.sources.base import Captured
from conftest import Background, FakeCamera, Subscriber, app, pet_pipeline, subscribed, wait_for
from mqtt_instances import Instance, discovery, emptied_while_listed, retained, retained_once, settings


BASE = "smartcam/cam0/detect"
DEVICE = "homeassistant/device/smartcam_cam0_detect/config"
LOGGER = "app.outputs.mqtt"


class Unpluggable(FakeCamera):
    """A live FakeCamera that can be unplugged: while `unplugged` is set every read fails, as a camera's that went
    away does, and the source reconnects until it is plugged in again."""

    def __init__(self) -> None:
        super().__init__(pause=0.02)
        self.unplugged = threading.Event()

    def read(self) -> Captured:
        if self.unplugged.is_set():
            raise OSError("unplugged")
        return super().read()


def test_a_camera_that_goes_down_makes_its_entities_unavailable_until_its_frames_flow_again(tmp_path, broker):
    """Every entity's availability is the instance's and the camera's (`availability_mode: all`): the camera's
    topic goes offline while the source reconnects, the instance stays online, and both are online again once frames
    flow; no count is emptied on the way."""
    path = pet_pipeline(tmp_path, "detect", publish={"labels": ["Bengal"]})
    run = load_settings(str(path), None, ["mqtt.host=127.0.0.1", f"mqtt.port={broker.port}",
                                          "camera.reconnect.initial_delay_s=0.1", "camera.reconnect.max_delay_s=0.2"])
    camera = Unpluggable()
    pipeline = Pipeline(run, [MqttPublisher(run.device.mqtt)], source=camera)
    source = f"{BASE}/source"
    with subscribed(broker.port, f"{BASE}/#") as watcher, Background(pipeline):
        wait_for(lambda: watcher.payloads(source)[-1:] == [b"online"], "the camera online")
        camera.unplugged.set()
        wait_for(lambda: watcher.payloads(source)[-1:] == [b"offline"], "the camera shown down")
        assert pipeline.stats.health_documents()["source"]["state"] == "reconnecting"
        assert watcher.payloads(f"{BASE}/availability")[-1:] == [b"online"]  # the instance itself is up
        seen = len(watcher.payloads(source))
        camera.unplugged.clear()
        wait_for(lambda: watcher.payloads(source)[-1:] == [b"online"], "the camera shown up again")
        assert watcher.payloads(source)[seen - 1:] == [b"offline", b"online"]
        assert b"" not in watcher.payloads(f"{BASE}/count/Bengal")


def test_a_removed_entity_s_count_is_emptied_only_after_the_discovery_no_longer_lists_it(
        tmp_path, broker, start, monkeypatch):
    """Home Assistant unloads a removed entity asynchronously: the count it showed is emptied after the device
    document without it, never while a discovery document still lists it (even as Home Assistant's removal
    marker), so no template of it renders an empty value."""
    monkeypatch.setattr(mqtt_discovery, "REMOVAL_GRACE_S", 0.5)
    first = start(settings(tmp_path, broker, "detect", ["Bengal", "beagle"]))
    retained_once(broker.port, lambda held: "beagle_count" in discovery(held).get(DEVICE, {}).get("components", {}),
                  "beagle announced")
    first.stop()
    watcher = Subscriber(broker.port)
    try:
        start(settings(tmp_path, broker, "detect", ["Bengal"]))
        wait_for(lambda: watcher.payloads(f"{BASE}/count/beagle", retained=False) == [b""], "beagle's count emptied")
        assert emptied_while_listed(watcher, DEVICE, "/count/") == []
    finally:
        watcher.close()


def test_another_board_publishing_the_same_instance_is_said_once_on_each_side(tmp_path, broker, start, caplog):
    """Two boards keeping camera cam0: the one that starts second finds the first's client id retained beside
    `online`, the first sees the second's arrive; each warns once. A board restarted under another client id (its
    earlier run stopped, `offline`) warns of nothing."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    board_a = start(settings(tmp_path, broker, "detect", ["Bengal"], "mqtt.client_id=board-a"))
    wait_for(board_a.connected, "board a connected")
    retained_once(broker.port, lambda held: held.get(f"{BASE}/client") == b"board-a", "board a's claim")
    board_b = start(settings(tmp_path, broker, "detect", ["Bengal"], "mqtt.client_id=board-b"))

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if "publishes smartcam/cam0/detect too" in r.getMessage()]

    wait_for(lambda: len(warnings()) == 2, lambda: f"a warning on each side: {warnings()}")
    assert sorted(w.split(",")[1].strip() for w in warnings()) == ["board-a", "board-b"]
    assert "camera.name" in warnings()[0]
    board_a.stop()
    board_b.stop()
    caplog.clear()
    renamed = start(settings(tmp_path, broker, "detect", ["Bengal"], "mqtt.client_id=board-c"))
    retained_once(broker.port, lambda held: held.get(f"{BASE}/client") == b"board-c", "the renamed board's claim")
    renamed.stop()
    assert warnings() == []


def test_a_count_emptied_later_waits_for_its_time_and_the_discovery_and_not_for_a_label_back_meanwhile():
    """RetainedState as data: what is sent `later` goes once due and after the discovery waiting to go; not at all
    when its topic holds a value again by then (the label is watched again)."""
    topics = Topics("smartcam", "cam0", "homeassistant", "detect")
    count = topics.count("beagle")
    state = RetainedState(topics)
    state.set(DEVICE, "{}")
    state.send_later([Message(count, "", retain=True)])
    due = state.due
    assert due is not None
    assert state.next(True, due) == Message(DEVICE, "{}", retain=True)
    assert state.next(True, due - 0.001) is None
    assert state.next(True, due) == Message(count, "", retain=True) and not state.pending
    state.send_later([Message(count, "", retain=True)])
    state.set(count, "0")
    assert state.next(True, math.inf) == Message(count, "0", retain=True)
    assert state.next(True, math.inf) is None and not state.pending


def config_file(tmp_path: Path, port: int) -> Path:
    """config.yaml of a board whose one camera is cam0, publishing to mosquitto on `port`."""
    path = tmp_path / "config.yaml"
    path.write_text(f"camera: {{name: cam0}}\nmqtt: {{enabled: true, host: 127.0.0.1, port: {port}}}\n")
    return path


def test_mqtt_clean_removes_what_unconfigured_cameras_and_pipelines_left_and_keeps_the_rest(tmp_path, broker, start):
    """Left on the broker: cam0/detect (configured), garage/detect (a camera removed), cam0/gone (a pipeline file
    removed), porch/detect (another board's client), attic/detect (running now). `--dry-run` says what would go and
    changes nothing; the command then empties the discovery of what goes before its state."""
    def left(camera: str, pipeline: str, *overrides: str) -> Instance:
        instance = start(settings(tmp_path, broker, pipeline, ["Bengal"], f"camera.name={camera}", *overrides))
        wait_for(lambda: (held := retained(broker.port)).get(f"smartcam/{camera}/{pipeline}/count/Bengal") == b"0"
                 and f"homeassistant/device/smartcam_{camera}_{pipeline}/config" in held,
                 f"{camera}/{pipeline} published, its discovery too (held until the broker's is checked)")
        return instance

    for instance in (left("cam0", "detect"), left("garage", "detect"), left("cam0", "gone"),
                     left("porch", "detect", "mqtt.client_id=smartcam-otherboard-porch-detect")):
        instance.stop()
    left("attic", "detect")
    config = config_file(tmp_path, broker.port)
    before = retained(broker.port)

    dry = app("mqtt", "clean", "--config", config, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "kept smartcam/attic/detect: online now",
        "kept smartcam/cam0/detect: configured",
        "would remove smartcam/cam0/gone: 5 retained topics",
        "would remove smartcam/garage/detect: 5 retained topics",
        "kept smartcam/porch/detect: another board's (client smartcam-otherboard-porch-detect)"]
    assert retained(broker.port) == before

    with subscribed(broker.port) as watcher:
        done = app("mqtt", "clean", "--config", config)
        assert done.returncode == 0, done.stderr
        emptied = [m.topic for m in list(watcher.messages) if not m.retain and not m.payload]
    after = retained(broker.port)
    gone = {t for t in before if "garage" in t or "cam0/gone" in t or "smartcam_cam0_gone" in t}
    assert len(gone) == 10 and not gone & set(after)
    assert set(after) == set(before) - gone
    assert sorted(emptied) == sorted(gone)
    first_state = min(i for i, t in enumerate(emptied) if not t.startswith("homeassistant/"))
    assert all(t.startswith("homeassistant/") for t in emptied[:first_state])
    assert emptied[-1].endswith("/availability")


def test_the_clean_up_plan_keeps_this_board_s_configured_instances_and_takes_its_old_ones():
    """As data: an instance with no client id retained (a version before them) is this board's; one with this
    host's default client id or made from mqtt.client_id is too; what goes is emptied discovery first."""
    held = {"smartcam/garage/detect/availability": b"offline", "smartcam/garage/detect/count/cat": b"1",
            "homeassistant/device/smartcam_garage_detect/config": b"{}",
            "homeassistant/sensor/smartcam_garage_detect/cat_count/config": b"{}",
            "smartcam/shed/detect/availability": b"offline", "smartcam/shed/detect/client": b"smartcam-pi-shed-detect",
            "smartcam/yard/detect/availability": b"offline", "smartcam/yard/detect/client": b"mine-yard",
            "smartcam/cam0/detect/availability": b"offline", "smartcam/legacy/availability": b"offline"}
    config = load_settings("detect", None, ["mqtt.client_id=mine"]).device.mqtt
    found = plan(held, config, ["cam0"], ["detect"], host="pi.local")
    assert [(f.topics.base, f.kept_because) for f in found] == [
        ("smartcam/cam0/detect", "configured"), ("smartcam/garage/detect", None), ("smartcam/shed/detect", None),
        ("smartcam/yard/detect", None)]
    first, then = removals(found)
    assert first == ["homeassistant/device/smartcam_garage_detect/config",
                     "homeassistant/sensor/smartcam_garage_detect/cat_count/config"]
    assert then[-1] == "smartcam/yard/detect/availability" and len(then) == 6
    elsewhere = plan(held, config.model_copy(update={"client_id": ""}), ["cam0"], ["detect"], host="other")
    assert [f.kept_because for f in elsewhere][2:] == ["another board's (client smartcam-pi-shed-detect)",
                                                       "another board's (client mine-yard)"]


def test_mqtt_clean_says_in_one_line_when_the_broker_cannot_be_reached(tmp_path):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    proc = app("mqtt", "clean", "--config", config_file(tmp_path, port))
    assert proc.returncode == 1 and proc.stderr.startswith("error: MQTT broker 127.0.0.1:")
    assert "Traceback" not in proc.stderr


@pytest.fixture(autouse=True)
def no_birth_delay(monkeypatch):
    """Home Assistant's birth is answered at once."""
    monkeypatch.setattr(mqtt_discovery, "BIRTH_DELAY_MAX_S", 0.0)
