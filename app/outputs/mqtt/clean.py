"""`python -m app mqtt clean`: remove from the broker what cameras and pipelines that are no longer configured left
retained (availability, camera state, client, counts, snapshot and their Home Assistant discovery), so Home Assistant
drops their devices and the broker forgets them.

An instance (`{prefix}/{camera}/{pipeline}`, found by its retained availability) is kept when its camera is
configured here (`camera.name` or `cameras:`) and its pipeline is a pipeline file (any of them may run on a camera,
as `smartcam@NAME`); when it is online now; or when its retained client id (`{base}/client`) says another board
publishes it (not `smartcam-<this host>-...`, nor this config's `mqtt.client_id`). An instance from before client
ids were retained has none, and is this board's. The others are removed in the order Home Assistant needs: their
discovery emptied first, the rest `REMOVAL_GRACE_S` later (an entity still loaded would render an emptied count),
their availability last.

`plan()` decides, as data; `read_retained()` and `empty()` talk to the broker.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from app.config import MqttConfig
from app.errors import SmartcamError
from app.names import safe_name
from app.outputs.mqtt import discovery
from app.outputs.mqtt.link import client_tls_context
from app.outputs.mqtt.topics import ONLINE, Topics

#: how long the broker is given to connect, deliver what it retains, and acknowledge the removals
BROKER_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Found:
    """One instance the broker retains something of, and what it decided."""

    topics: Topics
    #: its retained topics: its own (`{base}/...`) and its discovery documents
    state: tuple[str, ...]
    discovery: tuple[str, ...]
    #: why it is kept, or None when it goes
    kept_because: str | None


def plan(held: Mapping[str, bytes], mqtt_config: MqttConfig, cameras: Iterable[str], pipelines: Iterable[str],
         host: str) -> list[Found]:
    """Every instance the retained messages `held` show, each with what to empty and whether it is kept."""
    prefix, disc = mqtt_config.topic_prefix, mqtt_config.discovery.prefix
    configured_cameras = {safe_name(c) for c in cameras}
    configured_pipelines = {safe_name(p) for p in pipelines}
    found = []
    for topic in sorted(held):
        parts = topic[len(prefix) + 1:].split("/") if topic.startswith(f"{prefix}/") else []
        if len(parts) != 3 or parts[2] != "availability":
            continue
        topics = Topics(prefix, parts[0], disc, parts[1])
        state = tuple(t for t in held if t.startswith(f"{topics.base}/"))
        documents = tuple(t for t in held if _discovery_of(topics, t))
        client = held.get(topics.client, b"").decode(errors="replace")
        if topics.camera in configured_cameras and topics.pipeline in configured_pipelines:
            reason: str | None = "configured"
        elif held[topic] == ONLINE.encode():
            reason = "online now"
        elif client and not _ours(client, mqtt_config.client_id, host):
            reason = f"another board's (client {client})"
        else:
            reason = None
        found.append(Found(topics, state, documents, reason))
    return found


def _discovery_of(topics: Topics, topic: str) -> bool:
    """Whether `topic` is one of the instance's discovery documents (its device's, or one of its entities')."""
    entity = topics.entity_discovery(topic)
    return topic == topics.device_discovery or entity is not None and entity[1] == topics.node


def _ours(client: str, configured_id: str, host: str) -> bool:
    """Whether this board published with `client`: its default client id, or one made from `mqtt.client_id`."""
    own_default = f"smartcam-{safe_name(host.split('.')[0])}-"
    return client.startswith(own_default) or bool(configured_id) and client.startswith(configured_id)


def removals(found: Iterable[Found]) -> tuple[list[str], list[str]]:
    """What to empty for the instances that go: their discovery first, then their state, availability last."""
    going = [f for f in found if f.kept_because is None]
    first = [t for f in going for t in f.discovery]
    then = [t for f in going for t in sorted(f.state, key=lambda t: t == f.topics.availability)]
    return first, then


def clean(mqtt_config: MqttConfig, cameras: Iterable[str], pipelines: Iterable[str], dry_run: bool,
          resolve: Callable[[str], str | None]) -> list[str]:
    """Read what the broker retains, remove what `plan` says goes (unless `dry_run`); one line per instance."""
    client = _connected(mqtt_config, resolve)
    try:
        held = read_retained(client, [f"{mqtt_config.topic_prefix}/#", f"{mqtt_config.discovery.prefix}/#"])
        found = plan(held, mqtt_config, cameras, pipelines, socket.gethostname())
        first, then = removals(found)
        if not dry_run and first:
            empty(client, first)
            time.sleep(discovery.REMOVAL_GRACE_S)
        if not dry_run:
            empty(client, then)
    finally:
        client.disconnect()
        client.loop_stop()
    verb = "would remove" if dry_run else "removed"
    lines = [f"kept {f.topics.base}: {f.kept_because}" if f.kept_because is not None else
             f"{verb} {f.topics.base}: {len(f.state) + len(f.discovery)} retained topics" for f in found]
    return lines or [f"nothing retained under {mqtt_config.topic_prefix}/"]


def _connected(config: MqttConfig, resolve: Callable[[str], str | None]) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"smartcam-clean-{uuid.uuid4().hex[:8]}")
    if config.username:
        client.username_pw_set(config.username, config.password or None)
    if config.tls.enabled:
        tls = config.tls
        client.tls_set_context(client_tls_context(resolve(tls.ca), resolve(tls.cert), resolve(tls.key),
                                                  tls.insecure))
    connected = threading.Event()
    client.on_connect = lambda client, userdata, flags, reason, properties: \
        connected.set() if not reason.is_failure else None
    try:
        client.connect(config.host, config.port, config.keepalive_s)
    except OSError as exc:
        raise SmartcamError(f"MQTT broker {config.host}:{config.port} unreachable: {exc}") from None
    client.loop_start()
    if not connected.wait(BROKER_TIMEOUT_S):
        client.loop_stop()
        raise SmartcamError(f"MQTT broker {config.host}:{config.port} did not accept the connection "
                            "(check mqtt.username, mqtt.password and mqtt.tls)")
    return client


def read_retained(client: mqtt.Client, filters: list[str]) -> dict[str, bytes]:
    """What the broker retains under `filters`: subscribed, then a marker sent to itself, which the broker delivers
    after every retained message of the subscriptions."""
    marker = f"smartcam-clean/{uuid.uuid4().hex}"
    held: dict[str, bytes] = {}
    done = threading.Event()

    def received(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == marker:
            done.set()
        elif message.retain and message.payload:
            held[message.topic] = bytes(message.payload)

    client.on_message = received
    client.subscribe([(topic, 1) for topic in [*filters, marker]])
    client.publish(marker, b"-", qos=1)
    if not done.wait(BROKER_TIMEOUT_S):
        raise SmartcamError("the MQTT broker did not deliver what it retains (the ACL may forbid reading "
                            f"{', '.join(filters)})")
    return held


def empty(client: mqtt.Client, topics: list[str]) -> None:
    """Empty each retained topic, in order, and wait for the broker to take them."""
    for topic in topics:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(BROKER_TIMEOUT_S)
