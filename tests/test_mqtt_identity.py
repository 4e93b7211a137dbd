"""MQTT identity and health against a real mosquitto: two instances (one camera, pipelines `detect` and `face`,
one config) share a broker without taking each other's connection, availability or Home Assistant device; Home
Assistant discovery in both modes (one device document, or one per entity), the removal of what an instance no
longer publishes, the hand-over between the modes, Home Assistant's birth message answered after a random delay; a
hung broker is noticed, logged once, and the recovery seen. The publishers run without a pipeline: what is tested
is their connection and their topics."""

from __future__ import annotations

import json
import logging
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from app import __version__
from app.outputs.mqtt import (
    BIRTH_DELAY_MAX_S,
    MAX_CLIENT_ID,
    TAKEOVER_SESSIONS,
    Topics,
    birth_delay,
    default_client_id,
    device_document,
    device_name,
    discovery_components,
    entity_documents,
)
from app.outputs.mqtt import discovery as mqtt_discovery
from app.outputs.mqtt import publisher as mqtt_publisher
from conftest import Broker, Subscriber, subscribed, wait_for
from mqtt_instances import discovery, retained, retained_once, settings

LOGGER = "app.outputs.mqtt"
#: the device discovery topic of the instance under test (camera cam0, pipeline detect)
DEVICE = "homeassistant/device/smartcam_cam0_detect/config"
MIGRATE = {"migrate_discovery": True}
ENTITY = "mqtt.discovery.mode=entity"


@pytest.fixture(autouse=True)
def no_birth_delay(monkeypatch):
    """Home Assistant's birth is answered at once (the random delay has its own tests), and a removed entity's count
    emptied as soon as the discovery has gone (the grace has its own test, tests/test_mqtt_removal.py)."""
    monkeypatch.setattr(mqtt_discovery, "BIRTH_DELAY_MAX_S", 0.0)
    monkeypatch.setattr(mqtt_discovery, "REMOVAL_GRACE_S", 0.0)


def live(watcher: Subscriber, start: str = "homeassistant/") -> list[tuple[str, object]]:
    """The messages a watcher got as they were sent (not retained ones), in order: (topic, JSON document or "")."""
    return [(m.topic, json.loads(m.payload) if m.payload else "") for m in list(watcher.messages)
            if not m.retain and m.topic.startswith(start)]


def components(document: object) -> dict[str, dict]:
    assert isinstance(document, dict)
    return document["components"]


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

    held = retained_once(broker.port, lambda held: len(discovery(held)) == 2, "both instances' device discovery")
    assert held["smartcam/cam0/detect/availability"] == b"online"
    assert held["smartcam/cam0/face/availability"] == b"online"
    assert held["smartcam/cam0/detect/count/Bengal"] == held["smartcam/cam0/face/count/Bengal"] == b"0"
    documents = discovery(held)
    assert set(documents) == {DEVICE, "homeassistant/device/smartcam_cam0_face/config"}
    devices = {d["availability"][0]["topic"]: d["device"]["identifiers"][0] for d in documents.values()}
    assert devices == {"smartcam/cam0/detect/availability": "smartcam_cam0_detect",
                       "smartcam/cam0/face/availability": "smartcam_cam0_face"}
    assert len({c["unique_id"] for d in documents.values() for c in d["components"].values()}) == 6
    assert {d["device"]["name"] for d in documents.values()} == {"smartcam cam0 detect", "smartcam cam0 face"}

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
        face.publisher._link.client.socket().shutdown(socket.SHUT_RDWR)  # gone without a DISCONNECT: the will fires
        wait_for(lambda: b"offline" in watcher.payloads("smartcam/cam0/face/availability"), "face's last will")
        wait_for(lambda: face.connected() and face.health()["connections"] == 2, "face reconnecting")
        wait_for(lambda: watcher.payloads("smartcam/cam0/face/availability")[-1:] == [b"online"], "face back online")
        assert b"offline" not in watcher.payloads("smartcam/cam0/detect/availability")
        assert retained(broker.port, "smartcam/#")["smartcam/cam0/detect/availability"] == b"online"
        assert detect.health()["connections"] == 1
        assert "connection lost" in face.health()["last_error"]
    finally:
        watcher.close()


def a_run(start, tmp_path: Path, broker: Broker, labels: list[str] | None, expected: int,
          *overrides: str, until: Callable[[dict[str, bytes]], bool] = lambda held: True) -> dict[str, bytes]:
    """Start the instance `detect` watching `labels`, wait for `expected` retained discovery documents (and `until`
    finds what the broker retains as it should be), stop it; what the broker retains then."""
    instance = start(settings(tmp_path, broker, "detect", labels, *overrides))
    wait_for(instance.connected, "the instance connected")
    held = retained_once(broker.port, lambda held: len(discovery(held)) == expected and until(held),
                         f"{expected} discovery documents")
    instance.stop()
    return held


def test_the_device_document_holds_every_entity_with_device_origin_and_availability(tmp_path, broker, start):
    held = a_run(start, tmp_path, broker, ["Bengal", "beagle"], 1)
    document = discovery(held)[DEVICE]
    assert document["device"] == {"identifiers": ["smartcam_cam0_detect"], "name": "smartcam cam0 detect",
                                  "model": "smartcam", "sw_version": __version__}
    assert document["origin"] == {"name": "smartcam", "sw_version": __version__}
    assert document["availability"] == [{"topic": "smartcam/cam0/detect/availability"},
                                        {"topic": "smartcam/cam0/detect/source"}]
    assert document["components"]["Bengal_count"] == {
        "platform": "sensor", "name": "Bengal count", "unique_id": "smartcam_cam0_detect_Bengal_count",
        "state_topic": "smartcam/cam0/detect/count/Bengal", "state_class": "measurement"}
    assert document["components"]["beagle_occupancy"]["platform"] == "binary_sensor"
    assert document["components"]["snapshot"] == {
        "platform": "image", "name": "snapshot", "unique_id": "smartcam_cam0_detect_snapshot",
        "image_topic": "smartcam/cam0/detect/snapshot", "content_type": "image/jpeg"}
    assert set(document["components"]) == {"snapshot", "Bengal_count", "Bengal_occupancy", "beagle_count",
                                           "beagle_occupancy"}


def test_a_component_no_longer_published_is_removed_from_the_device_the_way_home_assistant_asks(
        tmp_path, broker, start):
    """Home Assistant removes a component of a device document only when it comes once as `{"platform": ...}`;
    then the document without it. Its count goes too. With discovery off the device document is emptied."""
    first = a_run(start, tmp_path, broker, ["Bengal", "beagle"], 1)
    assert "smartcam/cam0/detect/count/beagle" in first

    def updated(held: dict[str, bytes]) -> bool:  # the retained device document is this run's, not the last one's
        return "beagle_count" not in components(discovery(held)[DEVICE])

    with subscribed(broker.port, DEVICE) as watcher, subscribed(broker.port, "#") as everything:
        second = a_run(start, tmp_path, broker, ["Bengal"], 1, until=updated)  # beagle is no longer watched
        wait_for(lambda: live(watcher)[-1:] and "beagle_count" not in components(live(watcher)[-1][1]),
                 "the device document without beagle")
    sent = [document for _, document in live(watcher)]
    # the count is emptied after the removal (Home Assistant would read an empty count of an entity it still has)
    order = [(m.topic, bytes(m.payload)) for m in list(everything.messages) if not m.retain]
    removal_at = next(i for i, (topic, _) in enumerate(order) if topic == DEVICE)
    assert order.index(("smartcam/cam0/detect/count/beagle", b"")) > removal_at
    removal = {"beagle_count": {"platform": "sensor"}, "beagle_occupancy": {"platform": "binary_sensor"}}
    assert [d for d in sent if removal.items() <= components(d).items()] == [sent[0]]  # first, and once
    assert components(sent[0])["Bengal_count"]["platform"] == "sensor"  # the others stay as they are
    assert "smartcam/cam0/detect/count/beagle" not in second
    assert set(components(discovery(second)[DEVICE])) == {"snapshot", "Bengal_count", "Bengal_occupancy"}

    third = a_run(start, tmp_path, broker, ["Bengal"], 0, "mqtt.discovery.enabled=false")  # no entities at all
    assert not discovery(third)
    assert third["smartcam/cam0/detect/count/Bengal"] == b"0"  # what it still publishes stays


def test_in_entity_mode_each_entity_has_its_document_and_one_no_longer_published_is_emptied(
        tmp_path, broker, start):
    first = a_run(start, tmp_path, broker, ["Bengal", "beagle"], 5, ENTITY)
    beagle = {topic for topic in first if "beagle" in topic}
    assert beagle == {"homeassistant/sensor/smartcam_cam0_detect/beagle_count/config",
                      "homeassistant/binary_sensor/smartcam_cam0_detect/beagle_occupancy/config",
                      "smartcam/cam0/detect/count/beagle"}
    sensor = discovery(first)["homeassistant/sensor/smartcam_cam0_detect/Bengal_count/config"]
    assert sensor["name"] == "Bengal count" and sensor["unique_id"] == "smartcam_cam0_detect_Bengal_count"
    assert sensor["origin"] == {"name": "smartcam", "sw_version": __version__} and "platform" not in sensor
    assert sensor["device"]["name"] == "smartcam cam0 detect"
    assert sensor["availability"][0] == {"topic": "smartcam/cam0/detect/availability"}

    second = a_run(start, tmp_path, broker, ["Bengal"], 3, ENTITY)  # beagle is no longer watched: its documents go
    assert not beagle & set(second)
    assert "homeassistant/sensor/smartcam_cam0_detect/Bengal_count/config" in second

    third = a_run(start, tmp_path, broker, ["Bengal"], 0, ENTITY, "mqtt.discovery.enabled=false")
    assert not discovery(third)
    assert third["smartcam/cam0/detect/count/Bengal"] == b"0"


def test_switching_modes_hands_the_entities_over_as_home_assistant_documents_it(tmp_path, broker, start):
    """Entity to device: `{"migrate_discovery": true}` on each per-entity topic (Home Assistant unloads the entity and
    keeps its settings), the topic emptied, then the device document, which must not come before: Home Assistant
    refuses a device document for entities still discovered per entity. A label no longer watched is just emptied.
    Device to entity: the same, backwards."""
    a_run(start, tmp_path, broker, ["Bengal", "beagle"], 5, ENTITY)
    beagle = {"homeassistant/sensor/smartcam_cam0_detect/beagle_count/config",
              "homeassistant/binary_sensor/smartcam_cam0_detect/beagle_occupancy/config"}
    entities = {"homeassistant/sensor/smartcam_cam0_detect/Bengal_count/config",
                "homeassistant/binary_sensor/smartcam_cam0_detect/Bengal_occupancy/config",
                "homeassistant/image/smartcam_cam0_detect/snapshot/config"}
    with subscribed(broker.port, "homeassistant/#") as watcher:
        held = a_run(start, tmp_path, broker, ["Bengal"], 1)
        wait_for(lambda: any(topic == DEVICE for topic, _ in live(watcher)), "the device document")
    assert set(discovery(held)) == {DEVICE} and len(components(discovery(held)[DEVICE])) == 3
    sent = live(watcher)
    first_device = next(i for i, (topic, _) in enumerate(sent) if topic == DEVICE)
    for topic in entities:
        assert [d for t, d in sent if t == topic] == [MIGRATE, ""], topic
        assert [i for i, (t, _) in enumerate(sent) if t == topic][-1] < first_device, "the device came too soon"
    for topic in beagle:
        assert [d for t, d in sent if t == topic] == [""], topic
    assert "smartcam/cam0/detect/count/beagle" not in held

    with subscribed(broker.port, "homeassistant/#") as watcher:
        held = a_run(start, tmp_path, broker, ["Bengal"], 3, ENTITY)
        wait_for(lambda: entities <= {topic for topic, _ in live(watcher)}, "the per-entity documents")
    assert set(discovery(held)) == entities
    sent = live(watcher)
    assert [d for t, d in sent if t == DEVICE] == [MIGRATE, ""]
    emptied = [i for i, (t, _) in enumerate(sent) if t == DEVICE][-1]
    assert all(i > emptied for i, (t, _) in enumerate(sent) if t in entities), "an entity came too soon"


@pytest.mark.parametrize("mode", ["device", "entity"])
def test_the_camera_discovery_of_the_shared_layout_is_removed_and_nobody_elses(tmp_path, broker, start, mode):
    """What versions with one identity per camera retained (node smartcam_cam0, availability smartcam/availability)
    is emptied; another device's documents stay, and so does a label of this instance's kept by an all-labels run:
    as it is in entity mode, taken into the device document in device mode."""
    old_sensor = "homeassistant/sensor/smartcam_cam0/Bengal_count/config"
    persian = "homeassistant/sensor/smartcam_cam0_detect/Persian_count/config"  # seen by the last all-labels run
    kept = {
        "homeassistant/sensor/other_device/x_count/config": {"availability_topic": "smartcam/availability"},
        "homeassistant/sensor/smartcam_cam0/y_count/config": {"availability_topic": "smartcam/cam0/y/availability"},
        persian: {"availability_topic": "smartcam/cam0/detect/availability", "name": "Persian count",
                  "unique_id": "smartcam_cam0_detect_Persian_count",
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

    instance = start(settings(tmp_path, broker, "detect", None, f"mqtt.discovery.mode={mode}"))  # all labels
    wait_for(instance.connected, "the instance connected")
    held = retained_once(broker.port, lambda held: old_sensor not in held and (mode == "entity" or persian not in held),
                         "the old layout's sensor emptied")
    assert "smartcam/cam0/Bengal" not in held  # with the count it showed
    assert set(kept) - {persian} <= set(held)
    if mode == "entity":
        assert persian in held
    else:
        device = retained_once(broker.port, lambda held: "Persian_count" in components(discovery(held)[DEVICE]),
                               "Persian taken into the device document")
        assert components(discovery(device)[DEVICE])["Persian_count"] == {
            "platform": "sensor", **{k: v for k, v in kept[persian].items() if k != "availability_topic"}}


def test_home_assistant_birth_on_its_own_topic_or_the_discovery_prefix_has_everything_sent_again(
        tmp_path, broker, start):
    """Home Assistant announces itself on homeassistant/status whatever its discovery prefix; one that changed the
    prefix usually moved its birth topic there too: both are answered."""
    instance = start(settings(tmp_path, broker, "detect", ["Bengal"], "mqtt.discovery.prefix=house"))
    device, count = "house/device/smartcam_cam0_detect/config", "smartcam/cam0/detect/count/Bengal"
    with subscribed(broker.port, "#") as watcher:
        wait_for(lambda: watcher.payloads(device, retained=False) or watcher.payloads(device, retained=True),
                 "the device document")
        before = len(watcher.payloads(device, retained=False))
        watcher.client.publish("homeassistant/status", "online", qos=1)
        wait_for(lambda: len(watcher.payloads(device, retained=False)) == before + 1, "discovery again")
        wait_for(lambda: watcher.payloads(count, retained=False), "the state again")
        watcher.client.publish("house/status", "online", qos=1)
        wait_for(lambda: len(watcher.payloads(device, retained=False)) == before + 2, "discovery once more")
    assert instance.connected()


def test_the_answer_to_a_birth_waits_its_random_delay_and_nothing_waits_with_it(tmp_path, broker, start,
                                                                                  monkeypatch):
    """The delay is waited out by the sender thread, not paho's network thread: stats keep flowing through both
    meanwhile, and discovery is not sent again before it ends."""
    delays: list[float] = []

    def long_delay() -> float:
        delays.append(3600.0)
        return delays[-1]

    monkeypatch.setattr(mqtt_publisher, "birth_delay", long_delay)
    instance = start(settings(tmp_path, broker, "detect", ["Bengal"], "mqtt.stats_interval_s=0.2"))
    with subscribed(broker.port, "#") as watcher:
        wait_for(lambda: watcher.payloads(DEVICE), "the device document")
        wait_for(instance.connected, "the instance connected")
        sent = len(watcher.payloads(DEVICE))
        watcher.client.publish("homeassistant/status", "online", qos=1)
        wait_for(lambda: delays, "the delay chosen")
        stats = len(watcher.payloads("smartcam/cam0/detect/stats"))
        wait_for(lambda: len(watcher.payloads("smartcam/cam0/detect/stats")) >= stats + 3, "stats flowing")
        assert len(watcher.payloads(DEVICE)) == sent  # the answer waits its hour
    assert delays == [3600.0]


def test_the_birth_delay_is_random_and_within_its_bound(monkeypatch):
    monkeypatch.setattr(mqtt_discovery, "BIRTH_DELAY_MAX_S", BIRTH_DELAY_MAX_S)  # as shipped, not the tests' 0
    delays = [birth_delay() for _ in range(200)]
    assert all(0.0 <= delay <= BIRTH_DELAY_MAX_S for delay in delays)
    assert len(set(delays)) > 100 and max(delays) - min(delays) > BIRTH_DELAY_MAX_S / 2
    assert BIRTH_DELAY_MAX_S == 5.0


def test_entity_names_leave_the_device_name_out_and_the_device_names_its_camera_once():
    """Home Assistant puts the device's name before each entity's: "smartcam cam0 detect" + "Bengal count" makes
    sensor.smartcam_cam0_detect_bengal_count, not sensor.smartcam_cam0_cam0_bengal_count."""
    topics = Topics("smartcam", "cam0", "homeassistant", "detect")
    names = {c["name"] for c in discovery_components(topics, ["Bengal"]).values()}
    assert names == {"snapshot", "Bengal count", "Bengal occupancy"}
    document = device_document(topics, "cam0", discovery_components(topics, ["Bengal"]))
    assert document["device"]["name"] == "smartcam cam0 detect"
    assert all("cam0" not in c["name"] and "smartcam" not in c["name"] for c in document["components"].values())
    assert all({"platform", "unique_id", "name"} <= set(c) for c in document["components"].values())
    assert device_name("cam0", "cam0") == "smartcam cam0" and device_name("door", "face") == "smartcam door face"
    assert set(entity_documents(topics, "cam0", discovery_components(topics, []))) == {
        "homeassistant/image/smartcam_cam0_detect/snapshot/config"}


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

    def recovered() -> list[str]:  # logged just after the state turns connected, by paho's thread
        return [r.getMessage() for r in caplog.records
                if r.name == LOGGER and r.levelno == logging.INFO and "again after" in r.getMessage()]

    back = wait_for(recovered, "the recovery logged")
    records = [r for r in caplog.records if r.name == LOGGER]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "stopped answering" in warnings[0], warnings
    assert len(back) == 1, back
    assert seen.index("unresponsive") < seen.index("disconnected")


def test_the_same_instance_started_twice_is_said_once_each_not_at_every_takeover(tmp_path, broker, start, caplog):
    """Two clients with one client id take the session from each other at every reconnect (56 times a minute);
    each says so once, naming the client id and the fix, instead of a warning per takeover."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    first = start(settings(tmp_path, broker, "detect", ["Bengal"]))
    wait_for(first.connected, "the first instance connected")
    second = start(settings(tmp_path, broker, "detect", ["Bengal"]))
    assert second.publisher.client_id == first.publisher.client_id
    wait_for(lambda: all("taken over" in i.health()["last_error"] for i in (first, second)), "both see the takeover",
             40)
    sessions = first.health()["connections"] + second.health()["connections"]
    wait_for(lambda: first.health()["connections"] + second.health()["connections"] >= sessions + 4,
             "the takeovers going on", 40)
    records = [r for r in caplog.records if r.name == LOGGER]
    said = [r.getMessage() for r in records if r.levelno == logging.ERROR]
    assert len(said) == 2, said  # once by each
    assert all(f"another client connects with the client id {first.publisher.client_id}" in line for line in said)
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(warnings) <= 2 * (TAKEOVER_SESSIONS - 1), [r.getMessage() for r in warnings]


def test_a_broker_hung_for_less_than_the_keepalive_is_said(tmp_path, broker, start, caplog):
    """With the default 60 s keepalive, paho notices a hung broker only after 90 s: acknowledgements that stop
    for ACK_WAIT_S are said first, and their return."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    instance = start(settings(tmp_path, broker, "detect", ["Bengal"], "mqtt.stats_interval_s=0.2"))
    assert instance.publisher.config.keepalive_s == 60
    wait_for(instance.connected, "the instance connected")
    broker.process.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: instance.health()["state"] == "unresponsive", "unresponsive", 30)
    finally:
        broker.process.send_signal(signal.SIGCONT)
    wait_for(instance.connected, "answering again", 30)
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert any("stopped answering: no acknowledgement for" in m for m in messages), messages
    assert any("answering again after" in m for m in messages), messages
