"""Home Assistant discovery as data: `discovery.clean_up` decides from what a run publishes and what the broker
retains which messages to send, in which order, with no broker and no publisher. (tests/test_mqtt_identity.py
checks the same against a real mosquitto.)"""

from __future__ import annotations

import json

from app.outputs.mqtt.discovery import (MIGRATE_DISCOVERY, CleanUp, Published, TrackEntities, as_json, clean_up,
                                        device_document, discovery_components, discovery_messages)
from app.outputs.mqtt.topics import Message, Topics

TOPICS = Topics("smartcam", "cam0", "homeassistant", "detect")
DEVICE = TOPICS.device_discovery
BEAGLE_COUNT = "smartcam/cam0/detect/count/beagle"


def published(labels: list[str], *, mode: str = "device", enabled: bool = True, every_label: bool = False,
              retained: set[str] | None = None) -> Published:
    """What a run watching `labels` publishes: their components, and the counts it holds."""
    held = {TOPICS.count(label) for label in labels} if retained is None else retained
    return Published(TOPICS, enabled, mode == "device", every_label, discovery_components(TOPICS, labels),
                     frozenset(held))


def retained_device(labels: list[str]) -> dict:
    """The device document a run watching `labels` left retained."""
    return device_document(TOPICS, "cam0", discovery_components(TOPICS, labels))


def test_a_label_no_longer_watched_is_removed_from_the_device_then_its_count_emptied():
    """Home Assistant's removal of a component, `{"platform": ...}` once in the device document, comes first, and
    the device document without it after it; the emptied count only `later` (Home Assistant unloads the entity
    asynchronously: an empty count right after the removal would still reach its template)."""
    found = clean_up(published(["Bengal"]), DEVICE, retained_device(["Bengal", "beagle"]))
    (removal,), (count,) = found.messages, found.later
    assert count == Message(BEAGLE_COUNT, "", retain=True)
    assert removal.topic == DEVICE and removal.retain
    components = json.loads(removal.payload)["components"]
    assert components["beagle_count"] == {"platform": "sensor"}
    assert components["beagle_occupancy"] == {"platform": "binary_sensor"}
    assert components["Bengal_count"] == discovery_components(TOPICS, ["Bengal"])["Bengal_count"]
    assert found.discovery_after and not found.kept
    assert found.lines == (f"removing beagle_count, beagle_occupancy from {DEVICE} and {BEAGLE_COUNT}, "
                           "no longer published",)


def test_a_device_document_that_matches_the_run_calls_for_nothing():
    assert clean_up(published(["Bengal"]), DEVICE, retained_device(["Bengal"])) == CleanUp()
    removed_already = {**retained_device(["Bengal"]), "components": {
        **discovery_components(TOPICS, ["Bengal"]), "beagle_count": {"platform": "sensor"}}}
    assert clean_up(published(["Bengal"]), DEVICE, removed_already) == CleanUp()


def test_a_count_the_run_still_publishes_is_not_emptied():
    """Two entities may show one count: the count stays while the run holds a value for it."""
    found = clean_up(published(["Bengal"], retained={TOPICS.count("Bengal"), BEAGLE_COUNT}), DEVICE,
                     retained_device(["Bengal", "beagle"]))
    assert [m.topic for m in found.messages] == [DEVICE] and found.later == ()


def test_with_every_label_watched_the_labels_seen_before_are_kept_as_they_were():
    found = clean_up(published([], every_label=True), DEVICE, retained_device(["beagle"]))
    assert found.messages == () and not found.discovery_after
    assert found.kept == {o: c for o, c in discovery_components(TOPICS, ["beagle"]).items() if o != "snapshot"}


def test_in_entity_mode_the_device_document_is_handed_over_then_emptied_and_the_entities_follow():
    found = clean_up(published(["Bengal"], mode="entity"), DEVICE, retained_device(["Bengal"]))
    assert found.messages == (Message(DEVICE, MIGRATE_DISCOVERY), Message(DEVICE, "", retain=True))
    assert found.discovery_after


def test_with_discovery_off_the_device_document_and_its_counts_are_emptied():
    found = clean_up(published(["Bengal"], enabled=False, retained={TOPICS.count("Bengal")}), DEVICE,
                     retained_device(["Bengal", "beagle"]))
    assert found.messages == (Message(DEVICE, "", retain=True),)
    assert found.later == (Message(BEAGLE_COUNT, "", retain=True),)
    assert found.lines == (f"removing retained {DEVICE} and {BEAGLE_COUNT}, no longer published",)


def test_a_per_entity_document_the_device_now_holds_is_migrated_before_the_device_document():
    topic = TOPICS.discovery("sensor", "Bengal_count")
    document = {"name": "Bengal count", "state_topic": TOPICS.count("Bengal")}
    found = clean_up(published(["Bengal"]), topic, document)
    assert found.messages == (Message(topic, MIGRATE_DISCOVERY), Message(topic, "", retain=True))
    assert found.discovery_after and not found.kept


def test_a_per_entity_document_of_a_label_seen_by_an_all_labels_run_is_taken_into_the_device():
    topic = TOPICS.discovery("sensor", "Persian_count")
    document = {"name": "Persian count", "state_topic": TOPICS.count("Persian"), "device": {}, "origin": {},
                "availability_topic": TOPICS.availability}
    found = clean_up(published([], every_label=True), topic, document)
    assert found.kept == {"Persian_count": {"platform": "sensor", "name": "Persian count",
                                            "state_topic": TOPICS.count("Persian")}}
    assert found.messages == (Message(topic, MIGRATE_DISCOVERY), Message(topic, "", retain=True))
    kept_in_entity_mode = clean_up(published([], mode="entity", every_label=True), topic, document)
    assert kept_in_entity_mode == CleanUp()


def test_a_per_entity_document_no_longer_published_is_emptied_with_its_count():
    topic = TOPICS.discovery("sensor", "beagle_count")
    found = clean_up(published(["Bengal"], mode="entity"), topic, {"state_topic": BEAGLE_COUNT})
    assert found.messages == (Message(topic, "", retain=True),)
    assert found.later == (Message(BEAGLE_COUNT, "", retain=True),)
    assert not found.discovery_after


def test_a_per_entity_document_the_run_publishes_stays():
    topic = TOPICS.discovery("sensor", "Bengal_count")
    run = published(["Bengal"], mode="entity", retained={topic, TOPICS.count("Bengal")})
    assert clean_up(run, topic, {"state_topic": TOPICS.count("Bengal")}) == CleanUp()


def test_the_camera_discovery_of_the_shared_layout_goes_and_nobody_elses():
    old = "homeassistant/sensor/smartcam_cam0/Bengal_count/config"
    found = clean_up(published(["Bengal"]), old, {"availability_topic": "smartcam/availability",
                                                  "state_topic": "smartcam/cam0/Bengal"})
    assert found.messages == (Message(old, "", retain=True),)
    assert found.later == (Message("smartcam/cam0/Bengal", "", retain=True),)
    another_instance = {"availability_topic": "smartcam/cam0/y/availability"}
    assert clean_up(published(["Bengal"]), old, another_instance) == CleanUp()
    stranger = "homeassistant/sensor/other_device/x_count/config"
    assert clean_up(published(["Bengal"]), stranger, {"availability_topic": "smartcam/availability"}) == CleanUp()


def test_discovery_messages_are_one_device_document_or_one_document_per_entity():
    components = discovery_components(TOPICS, ["Bengal"], TrackEntities(tracking=True, zones=("door",)))
    (device,) = discovery_messages(TOPICS, "cam0", components, device_mode=True)
    assert device == Message(DEVICE, as_json(device_document(TOPICS, "cam0", components)), retain=True)
    entities = discovery_messages(TOPICS, "cam0", components, device_mode=False)
    assert {m.topic for m in entities} == {
        "homeassistant/image/smartcam_cam0_detect/snapshot/config",
        "homeassistant/event/smartcam_cam0_detect/objects/config",
        "homeassistant/sensor/smartcam_cam0_detect/zone_door_count/config",
        "homeassistant/sensor/smartcam_cam0_detect/Bengal_count/config",
        "homeassistant/binary_sensor/smartcam_cam0_detect/Bengal_occupancy/config"}
    assert all(m.retain for m in entities)


def test_every_entity_is_available_while_the_instance_is_online_and_its_camera_delivers():
    """`availability_mode: all` over the instance's availability and its camera's: a camera that is down shows its
    entities unavailable (not an empty room); both discovery modes say so."""
    expected = [{"topic": TOPICS.availability}, {"topic": TOPICS.source}]
    document = retained_device(["Bengal"])
    assert document["availability"] == expected and document["availability_mode"] == "all"
    for message in discovery_messages(TOPICS, "cam0", discovery_components(TOPICS, ["Bengal"]), device_mode=False):
        entity = json.loads(message.payload)
        assert entity["availability"] == expected and entity["availability_mode"] == "all"

