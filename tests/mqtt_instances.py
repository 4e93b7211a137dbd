"""MQTT publishers run without a pipeline, as running smartcams have them (`Instance`; conftest's `start` fixture
starts them), and what the broker holds retained, read by a fresh client: shared by the MQTT
identity and Home Assistant tests."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from app.config import Settings, load_settings
from app.metrics import Stats
from app.model.kinds.base import DETECTIONS
from app.outputs.base import PublishContext
from app.outputs.mqtt import MqttPublisher
from conftest import Broker, Subscriber, pet_pipeline, wait_for


def settings(tmp_path: Path, broker: Broker, pipeline: str, labels: list[str] | None, *overrides: str) -> Settings:
    """One config for every instance (camera cam0 on `broker`); `pipeline` names the pipeline file."""
    path = pet_pipeline(tmp_path, pipeline, publish={"labels": labels}, description=f"{pipeline}, for a test")
    return load_settings(str(path), None, ["mqtt.host=127.0.0.1", f"mqtt.port={broker.port}", *overrides])


class Instance:
    """A started MQTT publisher, as one running smartcam has it; `stop()` closes it (once)."""

    def __init__(self, settings: Settings, produces: str = DETECTIONS) -> None:
        """`produces`: what the run's model gives, as its kind says (detections, segments, ...)."""
        self.stats = Stats()
        self.publisher = MqttPublisher(settings.device.mqtt)
        self.publisher.start(PublishContext(settings, self.stats, settings.pipeline.publish, produces=produces))
        self.stopped = False

    def health(self) -> dict:
        return self.publisher.health()

    def connected(self) -> bool:
        return self.health()["state"] == "connected"

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.publisher.close(time.monotonic() + 5)


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


def emptied_while_listed(watcher: Subscriber, device: str, kind: str) -> list[str]:
    """The state topics of a `kind` (`/count/`, `/area/`) emptied while the latest `device` document listed them,
    or held Home Assistant's removal marker (`{"platform": ...}`): none, or an entity's template would render an
    empty value."""
    listed: set[str | None] = set()
    pending = False
    emptied = []
    for message in [m for m in list(watcher.messages) if not m.retain]:
        if message.topic == device and message.payload:
            components = json.loads(message.payload)["components"].values()
            listed = {c.get("state_topic") for c in components}
            pending = any(set(c) <= {"platform"} for c in components)
        elif not message.payload and kind in message.topic and (message.topic in listed or pending):
            emptied.append(message.topic)
    return emptied
