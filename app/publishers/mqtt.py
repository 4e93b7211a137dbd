"""MQTT: events, counts, snapshots, stats and Home Assistant discovery, without ever blocking the pipeline.

Owns the broker connection (paho-mqtt, reconnecting in the background), the topic layout, and what the broker
must hold for Home Assistant: availability, the current count per watched label, the latest snapshot and the
discovery documents. Those are *state*, kept here as the latest value per topic and sent again on every
(re)connect and whenever Home Assistant announces itself, so a broker that restarts without persistence has the
whole picture back without restarting smartcam. Everything else (events, per-frame results, stats) is a
*stream*: it waits in a bounded outbox that drops its oldest message, counted as `mqtt_outbox`, while the broker
is slow or gone.

`publish()` only records state and appends to the outbox; one sender thread hands messages to paho while
connected, at most `IN_FLIGHT` unacknowledged at a time, so paho's own queues stay small whatever the broker
does.

**One identity per running instance** (camera + pipeline), so `smartcam` and `smartcam@face` reading one config
share a broker: the client id (`smartcam-<host>-<camera>-<pipeline>` unless `mqtt.client_id`), every topic below
`{prefix}/{camera}/{pipeline}/` (the last will included), and the Home Assistant device and unique ids
(`{node}` = `<prefix>_<camera>_<pipeline>`). At each connect the instance subscribes to its own discovery topics:
a retained document it no longer publishes (a label no longer watched, discovery turned off) is emptied, with the
count it showed; so is the discovery that versions before this layout retained for the camera. With every label
watched (no `publish.labels`) the documents of labels seen before are kept: any of them may come back.

**Health** (`health()`, registered as `stats.health["mqtt"]`, so `/api/stats`, MQTT stats and `/metrics` show
it): connecting | connected | unresponsive | disconnected | closed, for how long, the last error or disconnect
reason, the outbox depth and the messages dropped. A broker that stops acknowledging while messages are in flight
is `unresponsive` after half the keepalive (paho's keepalive closes the connection after one to two); each outage
logs one warning, and its end one info line.

Topics (prefix: mqtt.topic_prefix; camera, pipeline and labels made safe by `app.names.safe_name`):
  {prefix}/{camera}/{pipeline}/availability   online | offline, retained (offline is also the last will)
  {prefix}/{camera}/{pipeline}/events         {"type", "label", "count", "previous", "camera", "pipeline", "result"}
  {prefix}/{camera}/{pipeline}/count/{label}  the label's current count, e.g. "2", retained
  {prefix}/{camera}/{pipeline}/snapshot       JPEG of the latest appeared/changed event, retained
  {prefix}/{camera}/{pipeline}/results        every processed frame's result (mqtt.publish_results)
  {prefix}/{camera}/{pipeline}/stats          the run's stats document, every mqtt.stats_interval_s
  {discovery}/{component}/{node}/{object_id}/config    Home Assistant discovery, retained
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from app import __version__
from app.config import MqttConfig
from app.errors import ConfigError
from app.metrics import CONNECTED
from app.names import safe_name
from app.publishers.base import Output, PublishContext, Publisher, event_document

log = logging.getLogger(__name__)

#: messages handed to paho and not yet acknowledged (QoS 1/2) or written to the socket (QoS 0)
IN_FLIGHT = 20
#: how long `close()` may take to deliver what is waiting and `offline`
CLOSE_TIMEOUT_S = 1.0
#: longest wait between attempts to reach a broker that went away
RECONNECT_MAX_S = 10
#: the longest default client id (brokers must take 23; mosquitto and the others take far more)
MAX_CLIENT_ID = 64
ONLINE, OFFLINE = "online", "offline"
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
    def node(self) -> str:
        """The Home Assistant node and device id: unique per instance, and per topic prefix."""
        return f"{safe_name(self.prefix)}_{self.camera}_{self.pipeline}"

    @property
    def home_assistant_status(self) -> str:
        return f"{self.discovery_prefix}/status"

    def discovery(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node}/{object_id}/config"

    def discovery_filters(self) -> tuple[str, str]:
        """The subscriptions that find retained discovery to check: the instance's own, and the camera's from
        before the per-instance layout (node `smartcam_{camera}`, availability `{prefix}/availability`)."""
        return (f"{self.discovery_prefix}/+/{self.node}/+/config",
                f"{self.discovery_prefix}/+/smartcam_{self.camera}/+/config")

    def discovery_node(self, topic: str) -> str | None:
        """The node of a discovery config topic, or None when `topic` is not one."""
        if not topic.startswith(f"{self.discovery_prefix}/"):
            return None
        levels = topic[len(self.discovery_prefix) + 1:].split("/")
        return levels[1] if len(levels) == 4 and levels[3] == "config" else None

    @property
    def legacy_availability(self) -> str:
        """The availability topic every instance shared before the per-instance layout."""
        return f"{self.prefix}/availability"


def discovery_documents(topics: Topics, camera: str, label: str | None) -> dict[str, dict]:
    """Home Assistant discovery documents by config topic: a label's count sensor and occupancy binary sensor,
    or (label None) the instance's snapshot image. One device per instance (camera + pipeline), named
    `smartcam {camera} {pipeline}`; Home Assistant puts that name before each entity's (`... Bengal count`)."""
    node = topics.node
    common = {
        "availability_topic": topics.availability,
        "device": {"identifiers": [node], "name": f"smartcam {camera} {topics.pipeline}", "model": "smartcam",
                   "sw_version": __version__},
    }
    if label is None:
        return {topics.discovery("image", "snapshot"): {
            **common, "name": "snapshot", "unique_id": f"{node}_snapshot",
            "image_topic": topics.snapshot, "content_type": "image/jpeg"}}
    object_id = safe_name(label)
    return {
        topics.discovery("sensor", f"{object_id}_count"): {
            **common, "name": f"{label} count", "unique_id": f"{node}_{object_id}_count",
            "state_topic": topics.count(label), "state_class": "measurement"},
        topics.discovery("binary_sensor", f"{object_id}_occupancy"): {
            **common, "name": f"{label} occupancy", "unique_id": f"{node}_{object_id}_occupancy",
            "state_topic": topics.count(label), "device_class": "occupancy",
            "value_template": "{{ 'ON' if value|int > 0 else 'OFF' }}"},
    }


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

    # --- the pipeline's side ---------------------------------------------------------------------------------

    def start(self, ctx: PublishContext) -> None:
        self._ctx = ctx
        self._topics = Topics(self.config.topic_prefix, safe_name(ctx.camera), self.config.discovery.prefix,
                              safe_name(ctx.pipeline))
        self.client_id = self.config.client_id or default_client_id(ctx.camera, ctx.pipeline)
        self._client = self._make_client(ctx)
        with self._wake:
            self._set_state(self._topics.availability, ONLINE)
            if self.config.discovery.enabled:
                self._set_discovery(None)
            for label in ctx.publish.labels or ():
                self._watch(label)
        ctx.stats.health["mqtt"] = self.health
        self._next_stats = time.monotonic() + self.config.stats_interval_s
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._sender.start()
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self._client.loop_start()

    def publish(self, out: Output) -> None:
        ctx, topics = self._ctx, self._topics
        stream = [Message(topics.events, json.dumps(event_document(e, out, ctx), separators=(",", ":")))
                  for e in out.events]
        if self.config.publish_results:
            stream.append(Message(topics.results, json.dumps(out.result, separators=(",", ":"))))
        snapshot = out.jpeg() if any(e.kind in SNAPSHOT_EVENTS for e in out.events) else None
        with self._wake:
            for label, count in out.counts.items():
                self._watch(label)
                self._set_state(topics.count(label), str(count))
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

    def _watch(self, label: str) -> None:
        """A label's count starts at 0 and, with discovery on, it gets its Home Assistant entities."""
        if label not in self._labels:
            self._labels.add(label)
            if self.config.discovery.enabled:
                self._set_discovery(label)
            self._set_state(self._topics.count(label), "0")

    def _set_discovery(self, label: str | None) -> None:
        for topic, document in discovery_documents(self._topics, self._ctx.camera, label).items():
            self._set_state(topic, json.dumps(document, separators=(",", ":")))

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

    def _stale(self, topic: str, document: dict) -> list[str]:
        """The retained topics to empty for a retained discovery document found on the broker: none while it is
        published; else the document, and the count it showed unless that is still published."""
        if topic in self._state:
            return []
        node = self._topics.discovery_node(topic)
        if node == self._topics.node:
            # with every label watched (no publish.labels) any label seen before may come back: kept
            if self.config.discovery.enabled and not self._ctx.publish.labels:
                return []
        elif not (node == f"smartcam_{self._topics.camera}"
                  and document.get("availability_topic") == self._topics.legacy_availability):
            return []  # another instance's, or a stranger's
        state_topic = document.get("state_topic")
        shown = [state_topic] if isinstance(state_topic, str) and state_topic not in self._state \
            and state_topic.startswith(f"{self._topics.prefix}/{self._topics.camera}/") else []
        return [topic, *shown]

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
        """When the in-flight messages are overdue: half the keepalive after the last sign of life."""
        if not self._connected or self._sent <= self._acked or self._link == UNRESPONSIVE:
            return None
        return self._progress + self.config.keepalive_s / 2

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
            if self._connected and self._sent - self._acked < IN_FLIGHT:
                message = self._ready_message()
                if message is not None:
                    return message, self._session, None
                if self._closing and self._state[self._topics.availability] == ONLINE:
                    self._set_state(self._topics.availability, OFFLINE)  # the last message
                    continue
            if self._closing and (not self._connected or self._delivered()):
                return None, self._session, None
            deadline = self._ack_deadline()
            wake = self._next_stats if deadline is None else min(self._next_stats, deadline)
            self._wake.wait(max(0.0, wake - time.monotonic()))

    def _ready_message(self) -> Message | None:
        if self._unsent:
            topic = next(iter(self._unsent))
            del self._unsent[topic]
            return Message(topic, self._state[topic], retain=True)
        if self._outbox:
            return self._outbox.popleft()
        return None

    def _delivered(self) -> bool:
        return not self._unsent and not self._outbox and self._sent <= self._acked \
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
        """TLS with the server's certificate checked (against tls.ca, or the system's CAs) unless tls.insecure."""
        tls = self.config.tls

        def path(value: str) -> str | None:
            return str(ctx.settings.resolve_path(value)) if value else None

        try:
            client.tls_set(ca_certs=path(tls.ca), certfile=path(tls.cert), keyfile=path(tls.key),
                           cert_reqs=ssl.CERT_NONE if tls.insecure else ssl.CERT_REQUIRED)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"mqtt.tls: cannot load the certificates ({exc}; check mqtt.tls.ca, cert and key)") \
                from None
        if tls.insecure:
            client.tls_insecure_set(True)

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
        subscriptions: list[tuple[str, int]] = [(topic, self.config.qos) for topic in self._topics.discovery_filters()]
        if self.config.discovery.enabled:
            subscriptions.append((self._topics.home_assistant_status, self.config.qos))
        client.subscribe(subscriptions)
        with self._wake:
            self._connected = True
            self._session += 1
            # a new connection starts a new count: paho forgets unwritten QoS 0 messages, and the QoS 1/2 ones it
            # resends may be acknowledged or not, so the old count could hold the sender back for good
            self._sent = self._acked = 0
            self._resend_state()
            outage, first = self._went_well(), self._session == 1
            self._wake.notify_all()
        if first:
            log.info("MQTT connected to %s:%d as %s%s", *broker, self.client_id,
                     "" if outage is None else f" after {outage:.0f} s of trying")
        elif outage is not None:
            log.info("MQTT connected to %s:%d again after %.0f s", *broker, outage)

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        hint = " (or its TLS certificate is not trusted: see mqtt.tls.ca)" if self.config.tls.enabled else ""
        with self._wake:
            warn = self._went_wrong(DISCONNECTED if self._session else CONNECTING, f"unreachable{hint}")
        if warn:
            self._warn("MQTT broker %s:%d unreachable%s", self.config.host, self.config.port, hint)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        with self._wake:
            was_connected, self._connected = self._connected, False
            warn = False
            if not self._closing:
                warn = self._went_wrong(DISCONNECTED if self._session else CONNECTING,
                                        f"{'connection lost' if was_connected else 'no answer'}: {reason_code}")
            self._wake.notify_all()
        if warn:
            self._warn("MQTT connection to %s:%d lost (%s)", self.config.host, self.config.port, reason_code)

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
        """Home Assistant came online (its birth message, not a retained one): send discovery and state again.
        A retained discovery document this instance no longer publishes: empty it."""
        if message.topic == self._topics.home_assistant_status:
            if message.payload == ONLINE.encode() and not message.retain:
                with self._wake:
                    self._resend_state()
                    self._wake.notify_all()
            return
        if not (message.retain and message.payload):
            return  # our own documents coming back, or one removed already
        try:
            document = json.loads(message.payload)
        except ValueError:
            document = None
        with self._wake:
            stale = self._stale(message.topic, document if isinstance(document, dict) else {})
            for topic in stale:
                self._set_state(topic, "")
            self._wake.notify_all()
        if stale:
            log.info("MQTT: removing retained %s, no longer published", " and ".join(stale))
