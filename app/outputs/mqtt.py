"""MQTT: events, counts, snapshots, stats and Home Assistant discovery, without ever blocking the pipeline.

Owns the broker connection (paho-mqtt, reconnecting in the background), the topic layout, and what the broker
must hold for Home Assistant: availability, the current count per watched label, the latest snapshot and the
discovery. Those are *state*, kept here as the latest value per topic and sent again on every (re)connect and
whenever Home Assistant announces itself, so a broker that restarts without persistence has the whole picture back
without restarting smartcam. Everything else (events, per-frame results, stats) is a *stream*: it waits in a
bounded outbox that drops its oldest message, counted as `mqtt_outbox`, while the broker is slow or gone.

`publish()` only records state and appends to the outbox; one sender thread hands messages to paho while
connected, at most `IN_FLIGHT` unacknowledged at a time, so paho's own queues stay small whatever the broker
does.

**One identity per running instance** (camera + pipeline), so `smartcam` and `smartcam@face` reading one config
share a broker: the client id (`smartcam-<host>-<camera>-<pipeline>` unless `mqtt.client_id`), every topic below
`{prefix}/{camera}/{pipeline}/` (the last will included), and the Home Assistant device and unique ids
(`{node}` = `<prefix>_<camera>_<pipeline>`).

**Home Assistant discovery** (Home Assistant's MQTT docs, "Device discovery payload"). `discovery_components()`
is the one list of the instance's entities, by object id: the snapshot image, and per watched label a count sensor
and an occupancy binary sensor; a new kind of entity is one more entry there. With `mqtt.discovery.mode: device`
(the default; Home Assistant 2024.11 and later) they go out as one retained document, `device`, `origin`, the
availability topic and `components`; with `entity` (older releases) as one retained document per entity. Entity
names leave the device name out (Home Assistant puts it in front: "smartcam cam0 detect" + "Bengal count").
Home Assistant's birth message (`online` on `homeassistant/status`, and on `{discovery}/status` when the prefix
is another) has the discovery and the state sent again after a random delay of up to `BIRTH_DELAY_MAX_S`, so a
house full of devices does not answer at once; the sender thread waits it out, never paho's network thread.

**Retained discovery of the past.** At each connect the instance subscribes to its own discovery topics and holds
its discovery back until the broker has delivered what they retain (the echo of its own availability marks the
end; `DISCOVERY_HOLD_S` at most). Then, before its own documents:
- a component the retained device document lists and this run does not publish (a label no longer watched) is
  sent once as `{"platform": ...}` inside the device document, Home Assistant's removal of one component, and the
  count it showed is emptied; the device document without it follows;
- a retained per-entity document is emptied (with its count) unless this run publishes it; in device mode one this
  run publishes as a component is first handed over with `{"migrate_discovery": true}`, so the entity keeps its
  settings and history (Home Assistant's "Migration from single component to device-based discovery"); in entity
  mode the retained device document is handed back the same way, then emptied;
- with discovery off, everything retained is emptied; so is the discovery that versions before the per-instance
  layout retained for the camera.
With every label watched (no `publish.labels`) the entities of labels seen before are kept (in device mode taken
into the device document): any of them may come back.

**Health** (`health()`, registered as `stats.health["mqtt"]`, so `/api/stats`, MQTT stats and `/metrics` show
it): connecting | connected | unresponsive | disconnected | closed, for how long, the last error or disconnect
reason, the outbox depth and the messages dropped. A broker that stops acknowledging while messages are in flight
is `unresponsive` after half the keepalive (paho's keepalive closes the connection after one to two); each outage
logs one warning, and its end one info line.

Topics (prefix: mqtt.topic_prefix; discovery: mqtt.discovery.prefix; camera, pipeline and labels made safe by
`app.names.safe_name`):
  {prefix}/{camera}/{pipeline}/availability   online | offline, retained (offline is also the last will)
  {prefix}/{camera}/{pipeline}/events         {"type", "label", "count", "previous", "camera", "pipeline", "result"}
  {prefix}/{camera}/{pipeline}/count/{label}  the label's current count, e.g. "2", retained
  {prefix}/{camera}/{pipeline}/snapshot       JPEG of the latest appeared/changed event, retained
  {prefix}/{camera}/{pipeline}/objects        tracked objects' events: {"type": new|update|end, "track_id", ...}
  {prefix}/{camera}/{pipeline}/zones/{zone}/count      confirmed objects in the zone now, retained
  {prefix}/{camera}/{pipeline}/lines/{line}/in|out     crossings since the start, retained
  {prefix}/{camera}/{pipeline}/results        every processed frame's result (mqtt.publish_results)
  {prefix}/{camera}/{pipeline}/stats          the run's stats document, every mqtt.stats_interval_s
  {discovery}/device/{node}/config            Home Assistant device discovery, retained (mode device)
  {discovery}/{platform}/{node}/{object_id}/config    Home Assistant discovery per entity, retained (mode entity)
  homeassistant/status, {discovery}/status    subscribed: Home Assistant's birth message
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from app import __version__
from app.config import MqttConfig
from app.errors import ConfigError
from app.metrics import CONNECTED
from app.names import safe_name
from app.outputs.reachability import why_unreachable
from app.outputs.base import Output, PublishContext, Publisher, event_document, object_document
from app.scene.tracker import NEW

log = logging.getLogger(__name__)

#: the longest wait for an acknowledgement before the broker counts as unresponsive (or half the keepalive, if
#: shorter): a hung broker is said within seconds, not only when the keepalive runs out
ACK_WAIT_S = 10.0
#: connections the broker closes within SHORT_LIVED_S of opening, TAKEOVER_SESSIONS times in TAKEOVER_WINDOW_S: another
#: client is connecting with this client id (the same instance started twice), each taking the session over
SHORT_LIVED_S = 5.0
TAKEOVER_SESSIONS = 3
TAKEOVER_WINDOW_S = 60.0
#: messages handed to paho and not yet acknowledged (QoS 1/2) or written to the socket (QoS 0)
IN_FLIGHT = 20
#: how long `close()` may take to deliver what is waiting and `offline`
CLOSE_TIMEOUT_S = 1.0
#: longest wait between attempts to reach a broker that went away
RECONNECT_MAX_S = 10
#: the longest default client id (brokers must take 23; mosquitto and the others take far more)
MAX_CLIENT_ID = 64
ONLINE, OFFLINE = "online", "offline"
#: where Home Assistant announces itself by default (its birth message, `online`), whatever its discovery prefix
HOME_ASSISTANT_STATUS = "homeassistant/status"
#: the discovery and state go out again this long after Home Assistant's birth, at random from 0 (Home Assistant's
#: advice: a random delay, so that many devices do not all answer at once)
BIRTH_DELAY_MAX_S = 5.0
#: the longest a new connection holds its discovery back waiting for the broker's retained discovery to be checked
DISCOVERY_HOLD_S = 5.0
#: Home Assistant's hand-over between per-entity and device discovery: unloads the entity, keeping its settings
MIGRATE_DISCOVERY = '{"migrate_discovery":true}'
#: the application behind the discovery, as Home Assistant logs it
ORIGIN = {"name": "smartcam", "sw_version": __version__}
SNAPSHOT_EVENTS = ("appeared", "changed")
#: the connection's states, as `health()` reports them
CONNECTING, UNRESPONSIVE, DISCONNECTED, CLOSED = "connecting", "unresponsive", "disconnected", "closed"


@dataclass(frozen=True)
class Message:
    topic: str
    payload: str | bytes
    retain: bool = False


def default_client_id(camera: str, pipeline: str, host: str | None = None) -> str:
    """`smartcam-<host>-<camera>-<pipeline>`, topic-safe; one too long keeps its start and a hash of the whole."""
    host = (host if host is not None else socket.gethostname()).split(".")[0]
    client_id = "-".join(("smartcam", safe_name(host), safe_name(camera), safe_name(pipeline)))
    if len(client_id) > MAX_CLIENT_ID:
        digest = hashlib.sha256(client_id.encode()).hexdigest()[:8]
        client_id = f"{client_id[:MAX_CLIENT_ID - len(digest) - 1]}-{digest}"
    return client_id


@dataclass(frozen=True)
class Topics:
    """Every topic one instance (camera + pipeline) uses, in one place; camera and pipeline already safe."""

    prefix: str
    camera: str
    discovery_prefix: str
    pipeline: str

    @property
    def base(self) -> str:
        """The instance's own subtree: nothing outside it is published by this instance but discovery."""
        return f"{self.prefix}/{self.camera}/{self.pipeline}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def stats(self) -> str:
        return f"{self.base}/stats"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def snapshot(self) -> str:
        return f"{self.base}/snapshot"

    @property
    def results(self) -> str:
        return f"{self.base}/results"

    def count(self, label: str) -> str:
        return f"{self.base}/count/{safe_name(label)}"

    @property
    def objects(self) -> str:
        return f"{self.base}/objects"

    def zone_count(self, zone: str) -> str:
        return f"{self.base}/zones/{safe_name(zone)}/count"

    def line_count(self, line: str, direction: str) -> str:
        return f"{self.base}/lines/{safe_name(line)}/{direction}"

    @property
    def node(self) -> str:
        """The Home Assistant node and device id: unique per instance, and per topic prefix."""
        return f"{safe_name(self.prefix)}_{self.camera}_{self.pipeline}"

    @property
    def birth(self) -> tuple[str, ...]:
        """Where Home Assistant's birth message may come: its default topic, and `{discovery}/status` when the
        discovery prefix is another (whoever changed one usually changed both)."""
        own = f"{self.discovery_prefix}/status"
        return (HOME_ASSISTANT_STATUS,) if own == HOME_ASSISTANT_STATUS else (HOME_ASSISTANT_STATUS, own)

    @property
    def device_discovery(self) -> str:
        """The instance's device discovery topic (every entity in one document)."""
        return f"{self.discovery_prefix}/device/{self.node}/config"

    def discovery(self, platform: str, object_id: str) -> str:
        """One entity's own discovery topic (per-entity discovery)."""
        return f"{self.discovery_prefix}/{platform}/{self.node}/{object_id}/config"

    def discovery_filters(self) -> tuple[str, str, str]:
        """The subscriptions that find retained discovery to check: the instance's device document and its
        per-entity documents, and the camera's from before the per-instance layout (node `smartcam_{camera}`,
        availability `{prefix}/availability`)."""
        return (self.device_discovery, f"{self.discovery_prefix}/+/{self.node}/+/config",
                f"{self.discovery_prefix}/+/smartcam_{self.camera}/+/config")

    def entity_discovery(self, topic: str) -> tuple[str, str, str] | None:
        """(platform, node, object id) of a per-entity discovery topic, or None when `topic` is not one."""
        if not topic.startswith(f"{self.discovery_prefix}/"):
            return None
        levels = topic[len(self.discovery_prefix) + 1:].split("/")
        return (levels[0], levels[1], levels[2]) if len(levels) == 4 and levels[3] == "config" else None

    def is_discovery(self, topic: str) -> bool:
        return topic == self.device_discovery or self.entity_discovery(topic) is not None

    @property
    def legacy_availability(self) -> str:
        """The availability topic every instance shared before the per-instance layout."""
        return f"{self.prefix}/availability"


def birth_delay() -> float:
    """How long to wait after Home Assistant's birth before sending discovery and state: at random, up to
    BIRTH_DELAY_MAX_S."""
    return random.uniform(0.0, BIRTH_DELAY_MAX_S)


def device_name(camera: str, pipeline: str) -> str:
    """`smartcam {camera} {pipeline}`, each word once (a pipeline named like its camera is not said twice). Home
    Assistant puts it before each entity's name: "smartcam cam0 detect Bengal count"."""
    words: list[str] = []
    for word in ("smartcam", camera, pipeline):
        if word.casefold() not in (w.casefold() for w in words):
            words.append(word)
    return " ".join(words)


@dataclass(frozen=True)
class Scene:
    """What the track stage adds to Home Assistant: the object event entity, and the zones' and lines' sensors."""

    tracking: bool = False
    zones: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()


#: the object event as Home Assistant's MQTT event entity reads it: `event_type` and attributes
OBJECT_EVENT_TEMPLATE = ("{{ {'event_type': value_json.type, 'track_id': value_json.track_id, "
                         "'label': value_json.label, 'zones': value_json.zones, "
                         "'changes': value_json.changes | default([])} "
                         "| to_json }}")


def discovery_components(topics: Topics, labels: Iterable[str], scene: Scene = Scene()) -> dict[str, dict]:
    """Every Home Assistant entity of the instance, by object id, as a device discovery component: its `platform`,
    `unique_id`, `name` (without the device's name: Home Assistant adds it) and the rest of its config. The snapshot
    image; per label (sorted) a count sensor and an occupancy binary sensor; with tracking, an event entity for
    the object events, a count sensor per zone and an in and an out counter per line. The one place to add an
    entity: both discovery modes are made from this."""
    node = topics.node
    components: dict[str, dict] = {"snapshot": {
        "platform": "image", "name": "snapshot", "unique_id": f"{node}_snapshot",
        "image_topic": topics.snapshot, "content_type": "image/jpeg"}}
    if scene.tracking:
        components["objects"] = {
            "platform": "event", "name": "object", "unique_id": f"{node}_objects", "state_topic": topics.objects,
            "event_types": ["new", "update", "end"], "value_template": OBJECT_EVENT_TEMPLATE}
    for zone in scene.zones:
        components[f"zone_{safe_name(zone)}_count"] = {
            "platform": "sensor", "name": f"{zone} zone count", "unique_id": f"{node}_zone_{safe_name(zone)}_count",
            "state_topic": topics.zone_count(zone), "state_class": "measurement"}
    for line in scene.lines:
        for direction in ("in", "out"):
            components[f"line_{safe_name(line)}_{direction}"] = {
                "platform": "sensor", "name": f"{line} {direction}",
                "unique_id": f"{node}_line_{safe_name(line)}_{direction}",
                "state_topic": topics.line_count(line, direction), "state_class": "total_increasing"}
    for label in sorted(labels):
        object_id = safe_name(label)
        components[f"{object_id}_count"] = {
            "platform": "sensor", "name": f"{label} count", "unique_id": f"{node}_{object_id}_count",
            "state_topic": topics.count(label), "state_class": "measurement"}
        components[f"{object_id}_occupancy"] = {
            "platform": "binary_sensor", "name": f"{label} occupancy", "unique_id": f"{node}_{object_id}_occupancy",
            "state_topic": topics.count(label), "device_class": "occupancy",
            "value_template": "{{ 'ON' if value|int > 0 else 'OFF' }}"}
    return components


def device_info(topics: Topics, camera: str) -> dict:
    """The Home Assistant device: one per instance (camera + pipeline)."""
    return {"identifiers": [topics.node], "name": device_name(camera, topics.pipeline), "model": "smartcam",
            "sw_version": __version__}


def device_document(topics: Topics, camera: str, components: dict[str, dict]) -> dict:
    """The device discovery document (for `topics.device_discovery`): device, origin, the shared availability
    topic, and the components."""
    return {"device": device_info(topics, camera), "origin": ORIGIN, "availability_topic": topics.availability,
            "components": components}


def entity_documents(topics: Topics, camera: str, components: dict[str, dict]) -> dict[str, dict]:
    """The same components as per-entity discovery documents, by topic (Home Assistant before 2024.11)."""
    common = {"availability_topic": topics.availability, "device": device_info(topics, camera), "origin": ORIGIN}
    return {topics.discovery(component["platform"], object_id):
            {**{key: value for key, value in component.items() if key != "platform"}, **common}
            for object_id, component in components.items()}


def as_component(document: dict, platform: str) -> dict:
    """A per-entity discovery document as a device component (its device, origin and availability are the
    device document's)."""
    shared = ("device", "origin", "availability_topic", "availability")
    return {"platform": platform, **{key: value for key, value in document.items() if key not in shared}}


def _json(document: dict) -> str:
    return json.dumps(document, separators=(",", ":"))


def client_tls_context(ca: str | None, cert: str | None, key: str | None, insecure: bool) -> ssl.SSLContext:
    """The TLS context of a connection to the broker, made as paho's `tls_set` makes it: the server's certificate
    checked against `ca` (or the system's CAs) and its name unless `insecure`; `cert` and `key` for brokers that
    want a client certificate. Not `ssl.create_default_context`, whose VERIFY_X509_STRICT (Python 3.13) refuses
    CAs without a key usage extension, such as those of mosquitto's own TLS how-to."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if insecure:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if cert:
        context.load_cert_chain(cert, key)
    if ca:
        context.load_verify_locations(ca)
    else:
        context.load_default_certs()
    return context


class MqttPublisher(Publisher):
    _ctx: PublishContext
    _topics: Topics
    _client: mqtt.Client
    _sender: threading.Thread

    def __init__(self, config: MqttConfig) -> None:
        self.config = config
        self.client_id = config.client_id
        self._wake = threading.Condition()  # guards everything below; never held while calling paho or logging
        self._outbox: deque[Message] = deque(maxlen=config.outbox_size)
        self._state: dict[str, str | bytes] = {}  # retained topic -> its current payload ("" removes it)
        self._unsent: dict[str, None] = {}  # retained topics to (re)send, in order
        self._labels: set[str] = set()
        self._scene = Scene()
        #: components of labels seen by an earlier all-labels run, found retained: published as they were
        self._kept: dict[str, dict] = {}
        #: one-off discovery messages (a component's removal, a hand-over) sent before the discovery state
        self._once: deque[Message] = deque()
        #: the retained discovery of this connection has been checked (or DISCOVERY_HOLD_S passed): discovery may
        #: go out; until then it is held, so that what the check finds is sent before it
        self._checked, self._hold_until = False, 0.0
        #: when to send every retained topic again for Home Assistant's birth (monotonic), if it is due
        self._resend_at: float | None = None
        self._connected = self._closing = False
        #: messages handed to paho and those it reported written (QoS 0) or acknowledged (QoS 1/2)
        self._sent = self._acked = 0
        #: monotonic time of the last sign of life while messages are in flight (a send from idle, or an ack)
        self._progress = 0.0
        self._session = 0  # counts connections, so a QoS 0 message of a lost connection is not waited for
        self._next_stats = 0.0
        # the health: the connection's state since when, the last error, messages dropped, and the outage (the
        # monotonic time it began, None while well) that has logged its one warning
        self._link, self._link_since, self._last_error = CONNECTING, time.monotonic(), ""
        self._dropped = 0
        self._outage: float | None = None
        #: the TLS context, when mqtt.tls is on
        self._tls: ssl.SSLContext | None = None
        #: when the current connection was made, and when the last few short-lived ones ended (a takeover)
        self._connected_at = 0.0
        self._short_lived: deque[float] = deque(maxlen=TAKEOVER_SESSIONS)
        self._taken_over = False

    # --- the pipeline's side ---------------------------------------------------------------------------------

    def start(self, ctx: PublishContext) -> None:
        self._ctx = ctx
        self._topics = Topics(self.config.topic_prefix, safe_name(ctx.camera), self.config.discovery.prefix,
                              safe_name(ctx.pipeline))
        self.client_id = self.config.client_id or default_client_id(ctx.camera, ctx.pipeline)
        self._client = self._make_client(ctx)
        camera = ctx.settings.device.camera
        tracking = ctx.settings.pipeline.track is not None
        self._scene = Scene(tracking, tuple(camera.zones) if tracking else (), tuple(camera.lines) if tracking else ())
        with self._wake:
            self._set_state(self._topics.availability, ONLINE)
            for label in ctx.publish.labels or ():
                self._watch(label, discovery=False)
            for zone in self._scene.zones:
                self._set_state(self._topics.zone_count(zone), "0")
            for line in self._scene.lines:
                for direction in ("in", "out"):
                    self._set_state(self._topics.line_count(line, direction), "0")
            self._update_discovery()
        ctx.stats.health["mqtt"] = self.health
        self._next_stats = time.monotonic() + self.config.stats_interval_s
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._sender.start()
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self._client.loop_start()

    def publish(self, out: Output) -> None:
        ctx, topics = self._ctx, self._topics
        stream = [Message(topics.events, _json(event_document(e, out, ctx))) for e in out.events]
        stream += [Message(topics.objects, _json(object_document(e, out, ctx))) for e in out.objects]
        if self.config.publish_results and not out.replay:
            stream.append(Message(topics.results, _json(out.result)))
        taken = any(e.kind in SNAPSHOT_EVENTS for e in out.events) or any(e.type == NEW for e in out.objects)
        snapshot = out.jpeg() if taken else None
        with self._wake:
            for label, count in out.counts.items():
                self._watch(label)
                self._set_state(topics.count(label), str(count))
            for zone, count in out.frame.zone_counts.items():
                self._set_state(topics.zone_count(zone), str(count))
            for line, counts in out.frame.line_counts.items():
                for direction, count in counts.items():
                    self._set_state(topics.line_count(line, direction), str(count))
            if snapshot is not None:
                self._set_state(topics.snapshot, snapshot)
            for message in stream:
                self._enqueue(message)
            self._wake.notify_all()

    def close(self, deadline: float) -> None:
        """Deliver what is waiting and `offline` (until `deadline` when connected, at most CLOSE_TIMEOUT_S), then
        disconnect."""
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._sender.join(max(0.0, min(deadline, time.monotonic() + CLOSE_TIMEOUT_S) - time.monotonic()))
        self._client.disconnect()
        self._client.loop_stop()
        with self._wake:
            self._set_link(CLOSED)

    @property
    def queued(self) -> int:
        """Stream messages waiting in the outbox."""
        with self._wake:
            return len(self._outbox)

    def health(self) -> dict[str, object]:
        """The connection as `/api/stats`, MQTT stats and `/metrics` show it: `state` (connecting, connected,
        unresponsive, disconnected, closed), `for_s` in it, `last_error` (the last failure or disconnect reason,
        kept after a recovery), the `outbox` depth, messages `dropped`, `in_flight`, `connections` made."""
        with self._wake:
            return {"ok": self._link in (CONNECTED, CLOSED), "state": self._link,
                    "for_s": round(time.monotonic() - self._link_since, 1), "last_error": self._last_error,
                    "broker": f"{self.config.host}:{self.config.port}", "client_id": self.client_id,
                    "outbox": len(self._outbox), "dropped": self._dropped,
                    "in_flight": self._sent - self._acked, "connections": self._session}

    # --- state and outbox (called with self._wake held) ------------------------------------------------------

    def _set_state(self, topic: str, payload: str | bytes) -> None:
        if self._state.get(topic) != payload:
            self._state[topic] = payload
            self._unsent[topic] = None

    def _watch(self, label: str, discovery: bool = True) -> None:
        """A label's count starts at 0 and, with discovery on, it gets its Home Assistant entities."""
        if label not in self._labels:
            self._labels.add(label)
            self._set_state(self._topics.count(label), "0")
            if discovery:
                self._update_discovery()

    @property
    def _device_mode(self) -> bool:
        return self.config.discovery.mode == "device"

    def _components(self) -> dict[str, dict]:
        return {**self._kept, **discovery_components(self._topics, self._labels, self._scene)}

    def _update_discovery(self) -> None:
        """The discovery state from the components: one device document, or one document per entity."""
        if not self.config.discovery.enabled:
            return
        camera, components = self._ctx.camera, self._components()
        if self._device_mode:
            self._set_state(self._topics.device_discovery, _json(device_document(self._topics, camera, components)))
        else:
            for topic, document in entity_documents(self._topics, camera, components).items():
                self._set_state(topic, _json(document))

    def _send_last(self, topic: str) -> None:
        """Send `topic`'s state again, after every retained topic waiting now."""
        self._unsent.pop(topic, None)
        self._unsent[topic] = None

    def _enqueue(self, message: Message) -> None:
        if len(self._outbox) == self._outbox.maxlen:
            self._drop()
        self._outbox.append(message)

    def _drop(self) -> None:
        self._dropped += 1
        self._ctx.stats.drop("mqtt_outbox")

    def _resend_state(self) -> None:
        """After a (re)connect or Home Assistant's restart: every retained topic again, from the current state."""
        self._unsent = dict.fromkeys(self._state)

    def _resend_if_due(self) -> None:
        if self._resend_at is not None and time.monotonic() >= self._resend_at:
            self._resend_at = None
            self._resend_state()

    # --- retained discovery found on the broker (called with self._wake held; each returns what to log) -------

    def _retained_discovery(self, topic: str, document: dict) -> list[str]:
        """Act on a retained discovery document found at connect: see the module's "Retained discovery"."""
        topics = self._topics
        if topic == topics.device_discovery:
            return self._retained_device(document)
        parts = topics.entity_discovery(topic)
        if parts is None:
            return []
        platform, node, object_id = parts
        if node == topics.node:
            return self._retained_entity(topic, platform, object_id, document)
        if node == f"smartcam_{topics.camera}" and document.get("availability_topic") == topics.legacy_availability:
            return self._empty(topic, document)
        return []  # another instance's, or a stranger's

    def _retained_device(self, document: dict) -> list[str]:
        """The instance's device document: components it lists and this run does not publish are removed (Home
        Assistant's way: once as `{"platform": ...}`), or kept when they are labels of an all-labels run. In entity
        mode the whole document is handed back to per-entity discovery; with discovery off it is emptied."""
        topic = self._topics.device_discovery
        listed = document.get("components")
        theirs = {o: c for o, c in listed.items() if isinstance(c, dict)} if isinstance(listed, dict) else {}
        if not self.config.discovery.enabled:
            return self._empty(topic, *theirs.values())
        lines, ours, removed = [], self._components(), []
        for object_id, component in theirs.items():
            if object_id in ours or set(component) <= {"platform"}:
                continue  # published, or removed already
            if self._keeps(component):
                self._kept[object_id] = component
            else:
                removed.append(object_id)
        if len(ours) != len(self._components()):
            self._update_discovery()
        if removed:
            marked = {o: {"platform": c.get("platform")} if o in removed else c for o, c in theirs.items()}
            self._once.append(Message(topic, _json({**document, "components": marked}), retain=True))
            shown = self._empty_counts(*(theirs[o] for o in removed))
            lines.append(f"removing {', '.join(removed)} from {topic}{''.join(f' and {t}' for t in shown)}, "
                         "no longer published")
            if self._device_mode:
                self._send_last(topic)  # the document without them, after
        if not self._device_mode:
            # Home Assistant's rollback: unload the device's entities keeping their settings, empty the document,
            # then the per-entity documents take the entities over
            self._once.append(Message(topic, MIGRATE_DISCOVERY))
            self._state[topic] = ""
            self._send_last(topic)
            for entity_topic in [t for t in self._unsent if self._topics.entity_discovery(t) and self._state[t]]:
                self._send_last(entity_topic)
            lines.append(f"handing {topic} over to per-entity discovery (mqtt.discovery.mode: entity)")
        return lines

    def _retained_entity(self, topic: str, platform: str, object_id: str, document: dict) -> list[str]:
        """One of the instance's per-entity documents: kept while published; in device mode one this run publishes
        as a component is handed over to the device document (Home Assistant's migration), so the entity keeps its
        settings; any other is emptied, with its count, unless it is a label of an all-labels run."""
        if self._state.get(topic):
            return []  # published by this run
        if self.config.discovery.enabled and self._device_mode:
            if object_id not in self._components() and self._keeps(document):
                self._kept[object_id] = as_component(document, platform)
                self._update_discovery()
            if self._components().get(object_id, {}).get("platform") == platform:
                self._once.append(Message(topic, MIGRATE_DISCOVERY))
                self._state[topic] = ""
                self._send_last(topic)
                self._send_last(self._topics.device_discovery)  # after the hand-over and the emptied topic
                return [f"moving {topic} into the device discovery {self._topics.device_discovery}"]
        elif self.config.discovery.enabled and self._keeps(document):
            return []  # every label watched: one seen before may come back
        return self._empty(topic, document)

    def _keeps(self, document: dict) -> bool:
        """With every label watched (no publish.labels), an entity showing a label's count is kept."""
        state_topic = document.get("state_topic")
        return not self._ctx.publish.labels and isinstance(state_topic, str) \
            and state_topic.startswith(f"{self._topics.base}/count/")

    def _empty(self, topic: str, *documents: dict) -> list[str]:
        """Empty a retained topic, and the counts its documents showed that are no longer published."""
        self._state[topic] = ""
        self._send_last(topic)
        return [f"removing retained {' and '.join([topic, *self._empty_counts(*documents)])}, no longer published"]

    def _empty_counts(self, *documents: dict) -> list[str]:
        emptied = []
        for document in documents:
            state_topic = document.get("state_topic")
            if isinstance(state_topic, str) and not self._state.get(state_topic) and state_topic not in emptied \
                    and state_topic.startswith(f"{self._topics.prefix}/{self._topics.camera}/"):
                self._state[state_topic] = ""
                self._send_last(state_topic)
                emptied.append(state_topic)
        return emptied

    # --- the connection's health (called with self._wake held; each returns what to log, logged unlocked) -----

    def _set_link(self, state: str) -> None:
        if state != self._link:
            self._link, self._link_since = state, time.monotonic()

    def _went_wrong(self, state: str, error: str) -> bool:
        """The connection is not well (`state`, because of `error`); True when this begins an outage (warn)."""
        self._set_link(state)
        self._last_error = error
        if self._outage is not None or self._closing:
            return False
        self._outage = time.monotonic()
        return True

    def _went_well(self) -> float | None:
        """Connected and answering; the length of the outage this ends, if one did."""
        self._set_link(CONNECTED)
        began, self._outage = self._outage, None
        return None if began is None else time.monotonic() - began

    def _warn(self, message: str, *args: object) -> None:
        log.warning(message + "; retrying in the background, holding up to %d messages (oldest dropped)",
                    *args, self.config.outbox_size)

    def _ack_deadline(self) -> float | None:
        """When the in-flight messages are overdue: ACK_WAIT_S (or half the keepalive) after the last sign of life."""
        if not self._connected or self._sent <= self._acked or self._link == UNRESPONSIVE:
            return None
        return self._progress + min(ACK_WAIT_S, self.config.keepalive_s / 2)

    def _check_acks(self) -> str | None:
        """A warning to log when acknowledgements stopped coming (a hung broker keeps its socket open)."""
        deadline = self._ack_deadline()
        if deadline is None or time.monotonic() < deadline:
            return None
        waiting = time.monotonic() - self._progress
        error = f"no acknowledgement for {waiting:.1f} s ({self._sent - self._acked} messages in flight)"
        if self._went_wrong(UNRESPONSIVE, error):
            return f"MQTT broker {self.config.host}:{self.config.port} stopped answering: {error}"
        return None

    # --- the sender thread -----------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            with self._wake:
                message, session, warning = self._next_message()
            if warning:
                self._warn("%s", warning)
            if message is None:
                if warning:
                    continue
                return
            self._send(message, session)

    def _next_message(self) -> tuple[Message | None, int, str | None]:
        """Wait for the next message that may go out now (state first, then the outbox) or a warning to log;
        (None, _, None) when closed."""
        while True:
            if warning := self._check_acks():
                return None, self._session, warning
            self._enqueue_stats_if_due()
            self._resend_if_due()
            if not self._checked and (self._closing or time.monotonic() >= self._hold_until):
                self._checked = True  # no echo from the broker: discovery waits no longer
            if self._connected and self._sent - self._acked < IN_FLIGHT:
                message = self._ready_message()
                if message is not None:
                    return message, self._session, None
                if self._closing and self._state[self._topics.availability] == ONLINE:
                    self._set_state(self._topics.availability, OFFLINE)  # the last message
                    continue
            if self._closing and (not self._connected or self._delivered()):
                return None, self._session, None
            deadlines = [self._next_stats, self._ack_deadline(), self._resend_at,
                         None if self._checked or not self._connected else self._hold_until]
            wake = min(d for d in deadlines if d is not None)
            self._wake.wait(max(0.0, wake - time.monotonic()))

    def _ready_message(self) -> Message | None:
        """The state first (discovery only once the retained discovery is checked, after the one-off discovery
        messages), then the outbox."""
        if self._checked and self._once:
            return self._once.popleft()
        for topic in self._unsent:
            if self._checked or not self._topics.is_discovery(topic):
                del self._unsent[topic]
                return Message(topic, self._state[topic], retain=True)
        if self._outbox:
            return self._outbox.popleft()
        return None

    def _delivered(self) -> bool:
        return not self._unsent and not self._once and not self._outbox and self._sent <= self._acked \
            and self._state[self._topics.availability] == OFFLINE

    def _enqueue_stats_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_stats:
            self._next_stats = now + self.config.stats_interval_s
            self._enqueue(Message(self._topics.stats, json.dumps(self._ctx.stats.document(), separators=(",", ":"))))

    def _send(self, message: Message, session: int) -> None:
        qos = self.config.qos
        info = self._client.publish(message.topic, message.payload, qos, message.retain)
        with self._wake:
            if qos == 0 and info.rc != mqtt.MQTT_ERR_SUCCESS:
                self._drop()  # the connection went just now
                return
            if qos == 0 and session != self._session:
                return
            if self._sent <= self._acked:
                self._progress = time.monotonic()  # the clock for an acknowledgement starts now
            self._sent += 1  # QoS 1/2: kept by paho, and sent again after a reconnect, until acknowledged

    # --- the client -----------------------------------------------------------------------------------------

    def _make_client(self, ctx: PublishContext) -> mqtt.Client:
        config = self.config
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id)
        if config.username:
            client.username_pw_set(config.username, config.password or None)
        if config.tls.enabled:
            self._set_tls(client, ctx)
        client.will_set(self._topics.availability, OFFLINE, config.qos, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _set_tls(self, client: mqtt.Client, ctx: PublishContext) -> None:
        """TLS with the server's certificate checked (against tls.ca, or the system's CAs) unless tls.insecure;
        the context is kept, so a failure can be looked into with the same one (`why_unreachable`)."""
        tls = self.config.tls

        def path(value: str) -> str | None:
            return str(ctx.settings.resolve_path(value)) if value else None

        try:
            context = client_tls_context(path(tls.ca), path(tls.cert), path(tls.key), tls.insecure)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"mqtt.tls: cannot load the certificates ({exc}; check mqtt.tls.ca, cert and key)") \
                from None
        client.tls_set_context(context)
        client.tls_insecure_set(tls.insecure)
        self._tls = context

    # --- paho's callbacks (its network thread) ---------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        broker = (self.config.host, self.config.port)
        if reason_code.is_failure:
            with self._wake:
                warn = self._went_wrong(DISCONNECTED if self._session else CONNECTING, f"refused: {reason_code}")
            if warn:
                self._warn("MQTT broker %s:%d refused the connection: %s", *broker, reason_code)
            return
        # the retained discovery to check, then the instance's own availability: the echo of the `online` sent
        # next comes after every retained message of these subscriptions, so it marks the end of the check
        topics = [*self._topics.discovery_filters(), self._topics.availability]
        if self.config.discovery.enabled:
            topics += self._topics.birth
        subscriptions: list[tuple[str, int]] = [(topic, self.config.qos) for topic in topics]
        client.subscribe(subscriptions)
        with self._wake:
            self._connected = True
            self._checked, self._hold_until = False, time.monotonic() + DISCOVERY_HOLD_S
            self._resend_at = None  # everything goes again now
            self._session += 1
            # a new connection starts a new count: paho forgets unwritten QoS 0 messages, and the QoS 1/2 ones it
            # resends may be acknowledged or not, so the old count could hold the sender back for good
            self._sent = self._acked = 0
            self._resend_state()
            outage, first = self._went_well(), self._session == 1
            self._connected_at = time.monotonic()
            self._wake.notify_all()
        if self._taken_over:
            return  # said once, when the takeovers were seen
        if first:
            log.info("MQTT connected to %s:%d as %s%s", *broker, self.client_id,
                     "" if outage is None else f" after {outage:.0f} s of trying")
        elif outage is not None:
            log.info("MQTT connected to %s:%d again after %.0f s", *broker, outage)

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        with self._wake:
            warn = self._went_wrong(DISCONNECTED if self._session else CONNECTING, "unreachable")
        if warn:  # paho does not say why: one look at the broker, off its network thread, names the cause
            threading.Thread(target=self._warn_unreachable, name="mqtt-probe", daemon=True).start()

    def _warn_unreachable(self) -> None:
        reason = why_unreachable(self.config.host, self.config.port, self._tls)
        with self._wake:
            if self._link != CONNECTED:
                self._last_error = f"unreachable: {reason}"
        self._warn("MQTT broker %s:%d unreachable: %s", self.config.host, self.config.port, reason)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        with self._wake:
            was_connected, self._connected = self._connected, False
            warn = taken_over = False
            if not self._closing:
                taken_over = was_connected and self._took_over()
                error = (f"{'connection lost' if was_connected else 'no answer'}: {reason_code}" if not self._taken_over
                         else f"taken over: another client connects as {self.client_id}")
                warn = self._went_wrong(DISCONNECTED if self._session else CONNECTING, error)
            self._wake.notify_all()
        if taken_over:
            log.error("MQTT: the broker %s:%d closed this connection %d times within %g s of opening it: another "
                      "client connects with the client id %s and takes the session over (this instance started "
                      "twice, or another board with the same mqtt.client_id): stop the other one, or give each its "
                      "own mqtt.client_id", self.config.host, self.config.port, TAKEOVER_SESSIONS, SHORT_LIVED_S,
                      self.client_id)
        elif warn and not self._taken_over:
            self._warn("MQTT connection to %s:%d lost (%s)", self.config.host, self.config.port, reason_code)

    def _took_over(self) -> bool:
        """Count a connection that just ended; True when this one shows another client taking the session over
        (said once; a connection that then lives on ends the takeover)."""
        now = time.monotonic()
        if now - self._connected_at >= SHORT_LIVED_S:
            self._short_lived.clear()
            self._taken_over = False
            return False
        self._short_lived.append(now)
        recent = len(self._short_lived) == TAKEOVER_SESSIONS and now - self._short_lived[0] <= TAKEOVER_WINDOW_S
        if recent and not self._taken_over:
            self._taken_over = True
            return True
        return False

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: ReasonCode,
                    properties: Properties) -> None:
        with self._wake:
            self._acked = min(self._acked + 1, self._sent)  # acks of a previous connection's resends count for nothing
            self._progress = time.monotonic()
            outage = self._went_well() if self._link == UNRESPONSIVE else None
            self._wake.notify_all()
        if outage is not None:
            log.info("MQTT broker %s:%d answering again after %.0f s", self.config.host, self.config.port, outage)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        """Home Assistant came online (its birth message, not a retained one): send discovery and state again,
        after a random delay (waited out by the sender thread). The echo of the instance's own availability: the
        retained discovery is checked. A retained discovery document: see `_retained_discovery`."""
        if message.topic in self._topics.birth:
            if message.payload == ONLINE.encode() and not message.retain:
                delay = birth_delay()
                with self._wake:
                    if self._resend_at is None:
                        self._resend_at = time.monotonic() + delay
                    self._wake.notify_all()
            return
        if message.topic == self._topics.availability:
            if not message.retain:
                with self._wake:
                    self._checked = True
                    self._wake.notify_all()
            return
        if not (message.retain and message.payload):
            return  # our own documents coming back, or one removed already
        try:
            document = json.loads(message.payload)
        except ValueError:
            document = None
        with self._wake:
            lines = self._retained_discovery(message.topic, document if isinstance(document, dict) else {})
            self._wake.notify_all()
        for line in lines:
            log.info("MQTT: %s", line)
