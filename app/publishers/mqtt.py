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

Topics (prefix: mqtt.topic_prefix, camera: camera.name; camera and labels made safe by `app.names.safe_name`):
  {prefix}/availability           online | offline, retained (offline is also the last will)
  {prefix}/{camera}/events        {"type", "label", "count", "previous", "camera", "pipeline", "result"}
  {prefix}/{camera}/{label}       the label's current count, e.g. "2", retained
  {prefix}/{camera}/snapshot      JPEG of the latest appeared/changed event, retained
  {prefix}/{camera}/results       every processed frame's result (mqtt.publish_results)
  {prefix}/stats                  fps, inference_ms, dropped, captured, processed, uptime_s and the run's info
  {discovery}/{component}/smartcam_{camera}/{object_id}/config    Home Assistant discovery, retained
"""

from __future__ import annotations

import json
import logging
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
from app.names import safe_name
from app.publishers.base import Output, PublishContext, Publisher, event_document

log = logging.getLogger(__name__)

#: messages handed to paho and not yet acknowledged (QoS 1/2) or written to the socket (QoS 0)
IN_FLIGHT = 20
#: how long `close()` may take to deliver what is waiting and `offline`
CLOSE_TIMEOUT_S = 1.0
#: longest wait between attempts to reach a broker that went away
RECONNECT_MAX_S = 10
ONLINE, OFFLINE = "online", "offline"
SNAPSHOT_EVENTS = ("appeared", "changed")


@dataclass(frozen=True)
class Message:
    topic: str
    payload: str | bytes
    retain: bool = False


@dataclass(frozen=True)
class Topics:
    """Every topic this camera uses, in one place."""

    prefix: str
    camera: str
    discovery_prefix: str

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    @property
    def stats(self) -> str:
        return f"{self.prefix}/stats"

    @property
    def events(self) -> str:
        return f"{self.prefix}/{self.camera}/events"

    @property
    def snapshot(self) -> str:
        return f"{self.prefix}/{self.camera}/snapshot"

    @property
    def results(self) -> str:
        return f"{self.prefix}/{self.camera}/results"

    def count(self, label: str) -> str:
        return f"{self.prefix}/{self.camera}/{safe_name(label)}"

    @property
    def home_assistant_status(self) -> str:
        return f"{self.discovery_prefix}/status"

    def discovery(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/smartcam_{self.camera}/{object_id}/config"


def discovery_documents(topics: Topics, camera: str, label: str | None) -> dict[str, dict]:
    """Home Assistant discovery documents by config topic: a label's count sensor and occupancy binary sensor,
    or (label None) the camera's snapshot image."""
    node = f"smartcam_{topics.camera}"
    common = {
        "availability_topic": topics.availability,
        "device": {"identifiers": [node], "name": f"smartcam {camera}", "model": "smartcam",
                   "sw_version": __version__},
    }
    if label is None:
        return {topics.discovery("image", "snapshot"): {
            **common, "name": f"{camera} snapshot", "unique_id": f"{node}_snapshot",
            "image_topic": topics.snapshot, "content_type": "image/jpeg"}}
    object_id = safe_name(label)
    return {
        topics.discovery("sensor", f"{object_id}_count"): {
            **common, "name": f"{camera} {label} count", "unique_id": f"{node}_{object_id}_count",
            "state_topic": topics.count(label), "state_class": "measurement"},
        topics.discovery("binary_sensor", f"{object_id}_occupancy"): {
            **common, "name": f"{camera} {label} occupancy", "unique_id": f"{node}_{object_id}_occupancy",
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
        self._wake = threading.Condition()  # guards everything below; never held while calling paho
        self._outbox: deque[Message] = deque(maxlen=config.outbox_size)
        self._state: dict[str, str | bytes] = {}  # retained topic -> its current payload
        self._unsent: dict[str, None] = {}  # retained topics to (re)send, in order
        self._labels: set[str] = set()
        self._connected = self._closing = self._warned = False
        #: messages handed to paho and those it reported written (QoS 0) or acknowledged (QoS 1/2)
        self._sent = self._acked = 0
        self._session = 0  # counts connections, so a QoS 0 message of a lost connection is not waited for
        self._next_stats = 0.0

    # --- the pipeline's side ---------------------------------------------------------------------------------

    def start(self, ctx: PublishContext) -> None:
        self._ctx = ctx
        self._topics = Topics(self.config.topic_prefix, safe_name(ctx.camera), self.config.discovery.prefix)
        self._client = self._make_client(ctx)
        with self._wake:
            self._set_state(self._topics.availability, ONLINE)
            if self.config.discovery.enabled:
                self._set_discovery(None)
            for label in ctx.publish.labels or ():
                self._watch(label)
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

    def close(self) -> None:
        """Deliver what is waiting and `offline` (within CLOSE_TIMEOUT_S when connected), then disconnect."""
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._sender.join(CLOSE_TIMEOUT_S)
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def queued(self) -> int:
        """Stream messages waiting in the outbox."""
        with self._wake:
            return len(self._outbox)

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
            self._ctx.stats.drop("mqtt_outbox")
        self._outbox.append(message)

    def _resend_state(self) -> None:
        """After a (re)connect or Home Assistant's restart: every retained topic again, from the current state."""
        self._unsent = dict.fromkeys(self._state)

    # --- the sender thread -----------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            with self._wake:
                message, session = self._next_message(), self._session
            if message is None:
                return
            self._send(message, session)

    def _next_message(self) -> Message | None:
        """Wait for the next message that may go out now: state first, then the outbox; None when closed."""
        while True:
            self._enqueue_stats_if_due()
            if self._connected and self._sent - self._acked < IN_FLIGHT:
                if self._unsent:
                    topic = next(iter(self._unsent))
                    del self._unsent[topic]
                    return Message(topic, self._state[topic], retain=True)
                if self._outbox:
                    return self._outbox.popleft()
                if self._closing and self._state[self._topics.availability] == ONLINE:
                    self._set_state(self._topics.availability, OFFLINE)  # the last message
                    continue
            if self._closing and (not self._connected or self._delivered()):
                return None
            self._wake.wait(max(0.0, self._next_stats - time.monotonic()))

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
            if qos > 0:
                self._sent += 1  # kept by paho, and sent again after a reconnect, until acknowledged
            elif info.rc != mqtt.MQTT_ERR_SUCCESS:
                self._ctx.stats.drop("mqtt_outbox")  # the connection went just now
            elif session == self._session:
                self._sent += 1

    # --- the client -----------------------------------------------------------------------------------------

    def _make_client(self, ctx: PublishContext) -> mqtt.Client:
        config = self.config
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=config.client_id or f"smartcam-{ctx.camera}")
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

    def _warn_once(self, message: str, *args: object) -> None:
        """One warning per outage, not one per reconnect attempt."""
        if not self._warned:
            self._warned = True
            log.warning(message + "; retrying in the background, holding up to %d messages (oldest dropped)",
                        *args, self.config.outbox_size)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            self._warn_once("MQTT broker %s:%d refused the connection: %s", self.config.host, self.config.port,
                            reason_code)
            return
        log.info("MQTT connected to %s:%d", self.config.host, self.config.port)
        if self.config.discovery.enabled:
            client.subscribe(self._topics.home_assistant_status, self.config.qos)
        with self._wake:
            self._connected, self._warned = True, False
            self._session += 1
            # a new connection starts a new count: paho forgets unwritten QoS 0 messages, and the QoS 1/2 ones it
            # resends may be acknowledged or not, so the old count could hold the sender back for good
            self._sent = self._acked = 0
            self._resend_state()
            self._wake.notify_all()

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        hint = " (or its TLS certificate is not trusted: see mqtt.tls.ca)" if self.config.tls.enabled else ""
        self._warn_once("MQTT broker %s:%d unreachable%s", self.config.host, self.config.port, hint)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        with self._wake:
            was_connected, self._connected = self._connected, False
            self._wake.notify_all()
        if was_connected and not self._closing:
            self._warn_once("MQTT connection to %s:%d lost (%s)", self.config.host, self.config.port, reason_code)

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: ReasonCode,
                    properties: Properties) -> None:
        with self._wake:
            self._acked = min(self._acked + 1, self._sent)  # acks of a previous connection's resends count for nothing
            self._wake.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        """Home Assistant came online (its birth message, not a retained one): send discovery and state again."""
        if message.payload == ONLINE.encode() and not message.retain:
            with self._wake:
                self._resend_state()
                self._wake.notify_all()
