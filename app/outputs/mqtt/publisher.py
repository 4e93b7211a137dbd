"""MQTT: events, counts, snapshots, stats and Home Assistant discovery, without ever blocking the pipeline.

`MqttPublisher` is the Publisher; it owns what the broker must hold for Home Assistant (availability, the current
count per watched label, zone and line counts, a segmentation's class areas, the objects carrying each taught name,
the latest snapshot and the discovery) and the stream of the rest (events, the tracked objects' events,
`person_down` among them, results, stats).
The topics are `topics.py`'s, the discovery documents and their clean-up `discovery.py`'s, the entities and
the retained state `state.py`'s, the connection `link.py`'s. The retained topics are *state* (`RetainedState`),
kept as the latest value per topic and sent again on every (re)connect and whenever Home Assistant announces
itself, so a broker that restarts without persistence has the whole picture back without restarting smartcam.
Everything else (events, per-frame results, stats) is a *stream*: it waits in a bounded outbox that drops its
oldest message, counted as `mqtt_outbox`, while the broker is slow or gone.

`publish()` only records state and appends to the outbox; one sender thread hands messages to the link while it has
room in its in-flight window. At each connect the instance subscribes to its own discovery topics and holds its
discovery back until the broker has delivered what they retain (the echo of its own availability marks the end;
`DISCOVERY_HOLD_S` at most); what `discovery.clean_up` makes of those goes out first, in its order. Home Assistant's
birth message has the discovery and the state sent again after `birth_delay()`, waited out by the sender thread,
never paho's network thread.

The camera's state is polled every `SOURCE_CHECK_S` from `stats.health["source"]` (the Reconnecting source's) and
kept retained at `{base}/source`: Home Assistant shows the entities unavailable while the camera is down
(`discovery.availability`). The client id is kept retained at `{base}/client`, and another client claiming the same
instance is said once (`identity.Claims`).

The health (`health()`, registered as `stats.health["mqtt"]`, so `/api/stats`, MQTT stats and `/metrics` show it) is
the link's, with the outbox depth and the messages dropped.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque

import paho.mqtt.client as mqtt

from app.config import MqttConfig
from app.model.kinds.segmentation import SEGMENTS, Segments
from app.names import safe_name
from app.outputs.base import Output, PublishContext, Publisher, event_document, object_document
from app.outputs.mqtt.discovery import as_json, birth_delay
from app.outputs.mqtt.identity import Claims
from app.outputs.mqtt.link import Link
from app.outputs.mqtt.state import Entities, RetainedState
from app.outputs.mqtt.topics import OFFLINE, ONLINE, Message, Topics, default_client_id
from app.scene.tracker import NEW, ObjectEvent

#: how long `close()` may take to deliver what is waiting and `offline`
CLOSE_TIMEOUT_S = 1.0
#: the longest a new connection holds its discovery back waiting for the broker's retained discovery to be checked
DISCOVERY_HOLD_S = 5.0
#: how often the camera's state is looked at for `{base}/source`
SOURCE_CHECK_S = 1.0
SNAPSHOT_EVENTS = ("appeared", "changed")

log = logging.getLogger(__package__)  # app.outputs.mqtt: one logger for the package


class MqttPublisher(Publisher):
    """MQTT as a Publisher: state and stream in, one sender thread out through the link (see the module)."""

    section = "mqtt"

    _ctx: PublishContext
    _topics: Topics
    _retained: RetainedState
    _entities: Entities
    _link: Link
    _sender: threading.Thread
    _claims: Claims

    def __init__(self, config: MqttConfig) -> None:
        self.config = config
        self.client_id = config.client_id
        self._wake = threading.Condition()  # guards everything below; never held while calling paho or logging
        self._outbox: deque[Message] = deque(maxlen=config.outbox_size)
        #: the retained discovery of this connection has been checked (or DISCOVERY_HOLD_S passed): discovery may
        #: go out; until then it is held, so that what the check finds is sent before it
        self._checked, self._hold_until = False, 0.0
        #: when to send every retained topic again for Home Assistant's birth (monotonic), if it is due
        self._resend_at: float | None = None
        self._closing = False
        self._next_stats = self._next_source_check = 0.0
        self._dropped = 0

    # --- the pipeline's side ---------------------------------------------------------------------------------

    def start(self, ctx: PublishContext) -> None:
        self._ctx = ctx
        topics = self._topics = Topics(self.config.topic_prefix, safe_name(ctx.camera), self.config.discovery.prefix,
                                       safe_name(ctx.pipeline))
        self._retained = RetainedState(topics)
        self.client_id = self.config.client_id or default_client_id(ctx.camera, ctx.pipeline)
        self._claims = Claims(topics, self.client_id)
        # the retained discovery to check, who claims the instance, then its own availability: the echo of the
        # `online` sent next comes after every retained message of these subscriptions, so it marks the end
        subscriptions = [*topics.discovery_filters(), topics.client, topics.availability,
                         *(topics.birth if self.config.discovery.enabled else ())]
        self._link = Link(self.config, self.client_id, self._wake, will=Message(topics.availability, OFFLINE, True),
                          subscriptions=subscriptions, tls_paths=self._resolve, on_session=self._new_session,
                          on_message=self._received)
        with self._wake:
            self._retained.set(topics.availability, ONLINE)
            self._retained.set(topics.client, self.client_id)
            self._check_source()
            self._entities = Entities(topics, self._retained, self.config.discovery, ctx)
        ctx.stats.health["mqtt"] = self.health
        self._next_stats = time.monotonic() + self.config.stats_interval_s
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._sender.start()
        self._link.connect()

    def reconfigure(self, ctx: PublishContext) -> bool:
        """A reload: with its own section (and the camera) unchanged, the session stays. The new zones, lines and
        watched labels change the entities as a new connection finding the old ones retained would: what this
        run announced is checked against what it publishes now (`discovery.clean_up`), so entities gone are
        removed (their counts emptied) and new ones announced."""
        if ctx.settings.device.mqtt != self.config or ctx.camera != self._ctx.camera:
            return False
        with self._wake:
            self._ctx = ctx
            lines = self._entities.reconfigure(ctx)
            self._wake.notify_all()
        for line in lines:
            log.info("MQTT: %s", line)
        return True

    def publish(self, out: Output) -> None:
        ctx, topics = self._ctx, self._topics
        stream = [Message(topics.events, as_json(event_document(e, out, ctx))) for e in out.events]
        stream += [Message(topics.objects, as_json(object_document(e, ctx))) for e in out.objects]
        if self.config.publish_results:
            stream.append(Message(topics.results, as_json(out.result)))
        taken = any(e.kind in SNAPSHOT_EVENTS for e in out.events) or any(e.type == NEW for e in out.objects)
        snapshot = out.sendable_jpeg(ctx.stats) if taken else None
        segments = out.frame.kind_results.get(SEGMENTS)
        with self._wake:
            if isinstance(segments, Segments):
                self._entities.show_areas(segments)
            self._entities.show_names(out.frame.detections)
            for label, count in out.counts.items():
                self._entities.watch(label)
                self._retained.set(topics.count(label), str(count))
            for zone, count in out.frame.zone_counts.items():
                self._retained.set(topics.zone_count(zone), str(count))
            for line, counts in out.frame.line_counts.items():
                for direction, count in counts.items():
                    self._retained.set(topics.line_count(line, direction), str(count))
            if snapshot is not None:
                self._retained.set(topics.snapshot, snapshot)
            for message in stream:
                self._enqueue(message)
            self._wake.notify_all()

    def finish(self, objects: list[ObjectEvent]) -> None:
        with self._wake:
            for event in objects:
                self._enqueue(Message(self._topics.objects, as_json(object_document(event, self._ctx))))
            self._wake.notify_all()

    def close(self, deadline: float) -> None:
        """Deliver what is waiting and `offline` (until `deadline` when connected, at most CLOSE_TIMEOUT_S), then
        disconnect."""
        with self._wake:
            self._closing = self._link.closing = True
            self._wake.notify_all()
        self._sender.join(max(0.0, min(deadline, time.monotonic() + CLOSE_TIMEOUT_S) - time.monotonic()))
        self._link.close()

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
            return {**self._link.health(), "outbox": len(self._outbox), "dropped": self._dropped}

    # --- state, discovery and outbox (called with self._wake held) --------------------------------------------

    def _resolve(self, path: str) -> str | None:
        return str(self._ctx.settings.resolve_path(path)) if path else None

    def _enqueue(self, message: Message) -> None:
        if len(self._outbox) == self._outbox.maxlen:
            self._drop()
        self._outbox.append(message)

    def _drop(self) -> None:
        self._dropped += 1
        self._ctx.stats.drop("mqtt_outbox")

    # --- the sender thread -----------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            with self._wake:
                message, session, warning = self._next_message()
            if warning:
                self._link.warn("%s", warning)
            if message is None:
                if warning:
                    continue
                return
            if not self._link.send(message, session):
                with self._wake:
                    self._drop()  # the connection went just now

    def _next_message(self) -> tuple[Message | None, int, str | None]:
        """Wait for the next message that may go out now (state first, then the outbox) or a warning to log;
        (None, _, None) when closed."""
        link = self._link
        while True:
            if warning := link.check_acks():
                return None, link.session, warning
            self._enqueue_stats_if_due()
            if time.monotonic() >= self._next_source_check:
                self._check_source()
            if self._resend_at is not None and time.monotonic() >= self._resend_at:
                self._resend_at = None
                self._retained.send_all()
            if not self._checked and (self._closing or time.monotonic() >= self._hold_until):
                self._checked = True  # no echo from the broker: discovery waits no longer
            if link.can_send():
                now = math.inf if self._closing else time.monotonic()  # closing: what waits `later` goes now
                message = self._retained.next(self._checked, now) or (self._outbox.popleft() if self._outbox else None)
                if message is not None:
                    return message, link.session, None
                if self._closing and self._retained[self._topics.availability] == ONLINE:
                    self._retained.set(self._topics.availability, OFFLINE)  # the last message
                    continue
            if self._closing and (not link.connected or self._delivered()):
                return None, link.session, None
            deadlines = [self._next_stats, self._next_source_check, link.ack_deadline(), self._resend_at,
                         self._retained.due if self._checked and link.can_send() else None,
                         None if self._checked or not link.connected else self._hold_until]
            wake = min(d for d in deadlines if d is not None)
            self._wake.wait(max(0.0, wake - time.monotonic()))

    def _delivered(self) -> bool:
        return not self._retained.pending and not self._outbox and not self._link.window \
            and self._retained[self._topics.availability] == OFFLINE

    def _check_source(self) -> None:
        """`{base}/source`: online while the camera delivers frames (or the source is not one that reconnects)."""
        self._next_source_check = time.monotonic() + SOURCE_CHECK_S
        report = self._ctx.stats.health.get("source")
        self._retained.set(self._topics.source, ONLINE if report is None or report().get("ok") else OFFLINE)

    def _enqueue_stats_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_stats:
            self._next_stats = now + self.config.stats_interval_s
            self._enqueue(Message(self._topics.stats, as_json(self._ctx.stats.document())))

    # --- the link's news ----------------------------------------------------------------------------------------

    def _new_session(self) -> None:
        """Connected (again; self._wake held): the retained discovery is checked anew, then everything goes again."""
        self._checked, self._hold_until = False, time.monotonic() + DISCOVERY_HOLD_S
        self._resend_at = None  # everything goes again now
        self._retained.send_all()

    def _received(self, message: mqtt.MQTTMessage) -> None:
        """Home Assistant came online (its birth message, not a retained one): send discovery and state again,
        after a random delay (waited out by the sender thread). The echo of the instance's own availability: the
        retained discovery is checked. A retained discovery document: see `discovery.clean_up`."""
        if message.topic in self._topics.birth:
            if message.payload == ONLINE.encode() and not message.retain:
                delay = birth_delay()
                with self._wake:
                    if self._resend_at is None:
                        self._resend_at = time.monotonic() + delay
                    self._wake.notify_all()
            return
        if message.topic in (self._topics.client, self._topics.availability):
            self._claimed(message)
        if message.topic == self._topics.availability:
            if not message.retain:
                with self._wake:
                    self._checked = True
                    self._wake.notify_all()
            return
        if message.topic == self._topics.client or not (message.retain and message.payload):
            return  # who publishes the instance, our own documents coming back, or one removed already
        try:
            document = json.loads(message.payload)
        except ValueError:
            document = None
        with self._wake:
            lines = self._entities.clean_up(message.topic, document if isinstance(document, dict) else {})
            self._wake.notify_all()
        for line in lines:
            log.info("MQTT: %s", line)

    def _claimed(self, message: mqtt.MQTTMessage) -> None:
        """Who publishes the instance (`identity.Claims`): another board's client is said once, as a warning."""
        if message.topic == self._topics.client:
            warning = self._claims.client(bytes(message.payload), message.retain)
        else:
            warning = self._claims.availability(bytes(message.payload), message.retain)
        if warning:
            log.warning("MQTT: %s", warning)
