"""The link's in-flight window is kept by message id: an acknowledgement frees its own message once, whatever the
order, repeats or strays of paho's `on_publish`, and one that comes before `publish()` has returned still counts.
No broker: the window as data, and the link with a client that stands in for paho."""

from __future__ import annotations

import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from conftest import wait_for

from app.config import MqttConfig
from app.outputs.mqtt import link as mqtt_link
from app.outputs.mqtt.link import InFlight, Link
from app.outputs.mqtt.topics import Message


def window_of(*mids: int, size: int = 20) -> InFlight:
    window = InFlight(size)
    for mid in mids:
        window.sent(mid)
    return window


def test_a_message_acknowledged_twice_frees_one_place_not_two():
    window = window_of(1, 2)
    window.acknowledged(1)
    window.acknowledged(1)
    assert len(window) == 1
    window.has_room()  # settled by the sender
    assert len(window) == 1
    window.acknowledged(2)
    window.has_room()
    assert len(window) == 0


def test_acknowledgements_out_of_order_free_their_own_messages():
    window = window_of(1, 2, 3)
    window.acknowledged(3)
    window.acknowledged(1)
    window.has_room()
    assert len(window) == 1
    window.acknowledged(2)
    window.has_room()
    assert len(window) == 0


def test_an_acknowledgement_for_no_message_in_flight_frees_nothing():
    """The ack of a message a previous connection sent (paho sends it again) is for an id the window lost."""
    window = window_of(1, 2)
    window.clear()  # a new connection
    window.sent(3)
    window.acknowledged(1)
    window.acknowledged(2)
    window.has_room()
    assert len(window) == 1


def test_an_acknowledgement_noted_before_a_reconnect_still_finds_its_message():
    """paho acknowledged the message, then the connection went and came back, all before the sender put its id in."""
    window = InFlight(20)
    window.acknowledged(3)
    window.clear()
    window.sent(3)
    assert len(window) == 0


def test_a_full_window_makes_room_only_when_one_of_its_own_is_acknowledged():
    window = window_of(1, 2, size=2)
    assert not window.has_room()
    window.acknowledged(7)
    assert not window.has_room()
    window.acknowledged(2)
    assert window.has_room()


class AckingFirst:
    """Stands in for paho's client: its network thread acknowledges each message before `publish()` returns the
    message's id to the sender (`acks` times, 1 as paho does)."""

    def __init__(self, link: Link, acks: int = 1) -> None:
        callback = link.client.on_publish  # the link's, called as paho's network thread calls it
        assert callback is not None
        self.on_publish: Callable[..., object] = callback
        self.acks, self.mids = acks, 0

    def publish(self, topic: str, payload: str | bytes, qos: int, retain: bool) -> mqtt.MQTTMessageInfo:
        self.mids += 1
        for _ in range(self.acks):
            self.on_publish(self, None, self.mids, ReasonCode(PacketTypes.PUBACK), Properties(PacketTypes.PUBACK))
        info = mqtt.MQTTMessageInfo(self.mids)
        info.rc = mqtt.MQTT_ERR_SUCCESS
        return info


LOCK = threading.Condition()


def connected_link() -> Link:
    link = Link(MqttConfig(qos=1), "test", LOCK, will=Message("t/availability", "offline", True), subscriptions=(),
                tls_paths=lambda path: None, on_session=lambda: None, on_message=lambda message: None)
    link.connected, link.session = True, 1
    return link


def test_a_message_acknowledged_before_publish_returns_leaves_the_window():
    link = connected_link()
    link.client = AckingFirst(link)  # type: ignore[assignment]
    for _ in range(30):  # more than the window holds
        assert link.send(Message("t/x", "1"), 1)
        with LOCK:
            assert link.can_send()
    assert link.health()["in_flight"] == 0


def test_an_early_acknowledgement_repeated_frees_no_other_message():
    link = connected_link()
    link.window.sent(1000)  # a message the broker has not acknowledged
    link.client = AckingFirst(link, acks=2)  # type: ignore[assignment]
    assert link.send(Message("t/x", "1"), 1)
    with LOCK:
        assert link.can_send()
    assert link.health()["in_flight"] == 1


def test_the_cause_of_an_unreachable_broker_stays_the_last_error_through_the_outage_s_other_attempts(monkeypatch):
    """The outage's one look names the cause; the attempts after it (paho retries every few seconds) keep it in
    the health instead of a bare "unreachable"."""
    monkeypatch.setattr(mqtt_link, "why_unreachable", lambda host, port, tls: "its TLS certificate is not trusted")
    link = Link(MqttConfig(), "test", LOCK, will=Message("t/availability", "offline", True), subscriptions=(),
                tls_paths=lambda path: None, on_session=lambda: None, on_message=lambda message: None)
    failed = link.client.on_connect_fail
    assert failed is not None
    failed(link.client, None)
    wait_for(lambda: "not trusted" in str(link.health()["last_error"]), "the cause found")
    failed(link.client, None)  # the next attempt
    assert link.health()["last_error"] == "unreachable: its TLS certificate is not trusted"
