"""What a segmentation and the pose monitor give Home Assistant, against a real mosquitto: a watched class's area
(DeepLab on grace_hopper.bmp) as a retained `%` sensor beside the camera's other entities, nothing for an unwatched
class, an area removed like a count (never emptied while a discovery document lists it) at a restart, a reload, and
by `mqtt clean`; the area's publishing step as data; a `person_down` object event on the objects topic, and the
event entity accepting it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.config import OverlayParams, Settings, load_settings
from app.frame import Frame, InputGeometry
from app.model.kinds.segmentation import SEGMENTS, Segments, class_shares
from app.outputs.base import Output, PublishContext
from app.outputs.mqtt import discovery as mqtt_discovery
from app.outputs.mqtt.areas import AREA_STEP, area_states
from app.outputs.mqtt.clean import plan, removals
from app.scene.tracker import ObjectEvent
from conftest import Broker, pet_pipeline, run_model, subscribed, wait_for
from mqtt_instances import discovery, emptied_while_listed, retained, retained_once, settings

BASE = "smartcam/cam0/segment"
DEVICE = "homeassistant/device/smartcam_cam0_segment/config"
#: a small class map's labels, for segments made by hand
LABELS = {0: "background", 1: "person", 2: "cat"}


@pytest.fixture(scope="module")
def grace_hopper() -> Frame:
    """DeepLab v3 on grace_hopper.bmp: 0.686 of it is person (shared/README's known answer)."""
    frame = run_model("deeplabv3_mnv2_pascal_quant.tflite", "grace_hopper.bmp", "pascal_voc_segmentation_labels.txt",
                      preprocess={"resize": "stretch"}, postprocess={"kind": "segmentation"})
    assert isinstance(frame.kind_results[SEGMENTS], Segments)
    return frame


def by_hand(person: int, cat: int = 0) -> Segments:
    """A 10 x 100 class map over a 100 x 10 frame: `person` and `cat` cells of 1000, each 0.1% of the frame."""
    cells = np.zeros(1000, dtype=np.intp)
    cells[:person] = 1
    cells[person:person + cat] = 2
    class_map = cells.reshape(10, 100)
    geometry = InputGeometry(100, 10, 100.0, 10.0)
    return Segments(class_map, geometry, class_shares(class_map, geometry), LABELS)


def segmented(segments: Segments) -> Output:
    frame = Frame(np.zeros((10, 100, 3), np.uint8), 1, "test", kind_results={SEGMENTS: segments})
    return Output(frame, frame.result("segment"), [], {}, OverlayParams(), 0.0)


def areas_announced(*labels: str):
    """A check for retained_once: the device document lists these area sensors and their areas are held."""
    def check(held: dict[str, bytes]) -> bool:
        components = discovery(held).get(DEVICE, {}).get("components", {})
        return all(f"{label}_area" in components and f"{BASE}/area/{label}" in held for label in labels)
    return check


def test_a_watched_class_s_area_is_a_retained_percent_sensor_and_an_unwatched_class_has_none(
        tmp_path, broker, start, grace_hopper):
    """publish.labels [person, cat] on DeepLab's grace_hopper.bmp: person's area is its share in percent with one
    decimal (68.5), cat's is 0.0 (absent, watched), background (unwatched, 31% of the frame) has neither state nor
    entity; the sensors are the camera's device's, with its availability."""
    instance = start(settings(tmp_path, broker, "segment", ["person", "cat"]))
    instance.publisher.publish(segmented(grace_hopper.kind_results[SEGMENTS]))
    held = retained_once(broker.port, areas_announced("person", "cat"), "the areas and their sensors")
    share = grace_hopper.kind_results[SEGMENTS].shares[15]
    assert share == pytest.approx(0.686, abs=0.005)
    assert held[f"{BASE}/area/person"] == f"{share * 100:.1f}".encode() == b"68.5"  # 0.6855 of the frame
    assert held[f"{BASE}/area/cat"] == b"0.0"
    assert not [t for t in held if "background" in t]
    device = discovery(held)[DEVICE]
    assert not [o for o in device["components"] if "background" in o]
    assert device["components"]["person_area"] == {
        "platform": "sensor", "name": "person area", "unique_id": "smartcam_cam0_segment_person_area",
        "state_topic": f"{BASE}/area/person", "unit_of_measurement": "%", "state_class": "measurement",
        "suggested_display_precision": 1}
    assert device["availability"] == [{"topic": f"{BASE}/availability"}, {"topic": f"{BASE}/source"}]
    assert device["availability_mode"] == "all"


def test_a_segmentation_run_s_watched_labels_get_area_sensors_and_no_counts(tmp_path, broker, start, grace_hopper):
    """publish.labels [person] on a model that gives segments: person's area sensor, and no count or occupancy
    sensor, which would stay 0 and off for a model that never gives a detection."""
    instance = start(settings(tmp_path, broker, "segment", ["person"]), produces=SEGMENTS)
    instance.publisher.publish(segmented(grace_hopper.kind_results[SEGMENTS]))
    held = retained_once(broker.port, areas_announced("person"), "person's area and its sensor")
    assert [name for name in discovery(held)[DEVICE]["components"] if name.startswith("person")] == ["person_area"]
    assert f"{BASE}/count/person" not in held


def test_an_area_is_published_again_once_it_moved_a_step():
    """As data: a watched class's first area goes out, then only once it moved AREA_STEP points from the one
    published; with every label watched a class gets its sensor once it covers a step, an unnamed class id by its
    number."""
    assert AREA_STEP == 1.0
    assert area_states(by_hand(400), ["person", "cat"], {}) == {"person": 40.0, "cat": 0.0}
    assert area_states(by_hand(409), ["person"], {"person": 40.0}) == {}
    assert area_states(by_hand(410), ["person"], {"person": 40.0}) == {"person": 41.0}
    assert area_states(by_hand(391), ["person"], {"person": 40.0}) == {}
    assert area_states(by_hand(390), ["person"], {"person": 40.0}) == {"person": 39.0}
    assert area_states(by_hand(400, cat=9), None, {}) == {"background": 59.1, "person": 40.0}
    assert area_states(by_hand(400, cat=10), None, {"person": 40.0, "background": 59.0}) == {"cat": 1.0}
    unnamed = Segments(np.full((2, 2), 7), InputGeometry(2, 2, 2.0, 2.0), {7: 1.0}, LABELS)
    assert area_states(unnamed, None, {}) == {"7": 100.0}


def test_an_area_no_longer_watched_is_removed_and_emptied_after_the_discovery_no_longer_lists_it(
        tmp_path, broker, start, monkeypatch):
    """Restarted watching person only: cat's area sensor is removed (Home Assistant's marker, then the device
    document without it) and its area emptied after; person's is kept though no segmented frame came yet (it is
    announced by the first one), and its area is never emptied. A reload dropping person, once a frame showed its
    area, removes its sensor too."""
    monkeypatch.setattr(mqtt_discovery, "REMOVAL_GRACE_S", 0.5)
    first = start(settings(tmp_path, broker, "segment", ["person", "cat"]))
    first.publisher.publish(segmented(by_hand(400, cat=100)))
    retained_once(broker.port, areas_announced("person", "cat"), "both areas announced")
    first.stop()
    with subscribed(broker.port) as watcher:
        second = start(settings(tmp_path, broker, "segment", ["person"]))
        wait_for(lambda: watcher.payloads(f"{BASE}/area/cat", retained=False) == [b""], "cat's area emptied")
        assert emptied_while_listed(watcher, DEVICE, "/area/") == []
        assert watcher.payloads(f"{BASE}/area/person", retained=False) == []
        documents = [json.loads(p)["components"] for p in watcher.payloads(DEVICE, retained=False) if p]
        assert "person_area" in documents[-1] and "cat_area" not in documents[-1]
        assert [d["person_area"] for d in documents if set(d.get("person_area", {})) <= {"platform"}] == []

        second.publisher.publish(segmented(by_hand(400)))
        wait_for(lambda: watcher.payloads(f"{BASE}/area/person", retained=False) == [b"40.0"], "person's area")
        reloaded = settings(tmp_path, broker, "segment", ["Bengal"])
        assert second.publisher.reconfigure(PublishContext(reloaded, second.stats, reloaded.pipeline.publish))
        wait_for(lambda: watcher.payloads(f"{BASE}/area/person", retained=False)[-1:] == [b""],
                 "person's area emptied")
        assert emptied_while_listed(watcher, DEVICE, "/area/") == []
    assert not [t for t, payload in retained(broker.port).items() if "area" in t]


def test_mqtt_clean_empties_an_old_instance_s_areas_after_its_discovery():
    held = {f"{BASE}/availability": b"offline", f"{BASE}/area/person": b"68.6", DEVICE: b"{}"}
    config = load_settings("detect", None, []).device.mqtt
    first, then = removals(plan(held, config, ["cam0"], ["detect"], host="pi"))
    assert first == [DEVICE] and then == [f"{BASE}/area/person", f"{BASE}/availability"]


def tracking(tmp_path: Path, broker: Broker) -> Settings:
    path = pet_pipeline(tmp_path, "segment", track={})
    return load_settings(str(path), None, ["mqtt.host=127.0.0.1", f"mqtt.port={broker.port}"])


def test_a_person_down_event_goes_out_on_the_objects_topic_and_home_assistant_s_event_entity_accepts_it(
        tmp_path, broker, start):
    """The pose monitor's object event, made by hand, through the publisher: on `{base}/objects` as the tracker's
    events are, and among the `event_types` of the object event entity (Home Assistant drops an event whose type
    is not listed)."""
    down = ObjectEvent(type="person_down", track_id=7, label="person", score=0.8, box=(10.0, 200.0, 300.0, 260.0),
                       zones=("hall",), start=12.0, end=None, stationary=True, changes=("person_down",), seq=3)
    with subscribed(broker.port, f"{BASE}/objects") as watcher:
        instance = start(tracking(tmp_path, broker))
        frame = Frame(np.zeros((4, 4, 3), np.uint8), 3, "test")
        instance.publisher.publish(Output(frame, frame.result("segment"), [], {}, OverlayParams(), 0.0,
                                          objects=[down]))
        wait_for(lambda: watcher.payloads(f"{BASE}/objects"), "the object event")
        (sent,) = [json.loads(p) for p in watcher.payloads(f"{BASE}/objects")]
    assert sent == {**down.as_dict(), "camera": "cam0", "pipeline": "segment", "seq": 3}
    held = retained_once(broker.port, lambda held: DEVICE in held, "the discovery")
    event = discovery(held)[DEVICE]["components"]["objects"]
    assert event["event_types"] == ["new", "update", "end", "person_down"]
    assert event["state_topic"] == f"{BASE}/objects"


@pytest.fixture(autouse=True)
def no_birth_delay(monkeypatch):
    """Home Assistant's birth is answered at once."""
    monkeypatch.setattr(mqtt_discovery, "BIRTH_DELAY_MAX_S", 0.0)

