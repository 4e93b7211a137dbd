"""The link to the broker: paho-mqtt's client, TLS, reconnecting in the background, the connection's health, another
client taking the session over, and the window of messages in flight.

**The in-flight window** holds the messages handed to paho and not yet acknowledged (QoS 1/2) or written to the
socket (QoS 0), by paho's message id (`mid`): a message enters it when `publish()` returns its id and leaves it when
`on_publish` names that id. An acknowledgement frees only its own message, once: one acknowledged twice, acks out of
order, or the ack of a message a previous connection sent cannot free another's place. At most `IN_FLIGHT` are in
flight, so paho's own queues stay small whatever the broker does.

**Health** (`health()`): connecting | connected | unresponsive | disconnected | closed, for how long, the last error
or disconnect reason, what is in flight and the connections made. A broker that stops acknowledging while messages
are in flight is `unresponsive` after `ACK_WAIT_S` or half the keepalive (paho's keepalive closes the connection after
one to two); each outage logs one warning, and its end one info line. A broker that cannot be reached is looked at
once per outage, off paho's network thread, and the cause named (`why_unreachable`). Connections the broker keeps
closing right after opening them are another client with the same client id: said once, as an error.

Threads: paho's network thread runs the callbacks; the publisher's sender thread calls `send()`. Both hold the
publisher's condition (`lock`) while touching the link's state, and never while calling paho or logging.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from app.config import MqttConfig
from app.errors import ConfigError
from app.metrics import CONNECTED
from app.outputs.mqtt.topics import Message
from app.outputs.reachability import why_unreachable

log = logging.getLogger(__package__)  # app.outputs.mqtt: one logger for the package

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
#: longest wait between attempts to reach a broker that went away
RECONNECT_MAX_S = 10
#: the connection's states, as `health()` reports them
CONNECTING, UNRESPONSIVE, DISCONNECTED, CLOSED = "connecting", "unresponsive", "disconnected", "closed"


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


class InFlight:
    """The message ids handed to paho and not yet acknowledged. paho may acknowledge a message (its network thread)
    before `publish()` has returned the id to the sender, so an acknowledgement is noted (`acknowledged`) and
    settled only by the thread that sends (`sent`, `has_room`), after it has put the id in: one that comes first
    still finds its message, and one for an id never put in (or put in and settled already) frees nothing."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: set[int] = set()
        self._acks: list[int] = []

    def __len__(self) -> int:
        return len(self._ids.difference(self._acks))

    def acknowledged(self, mid: int) -> None:
        self._acks.append(mid)

    def sent(self, mid: int) -> None:
        """The sender handed message `mid` to paho."""
        self._ids.add(mid)
        self._settle()

    def has_room(self) -> bool:
        """The sender may hand paho another message."""
        self._settle()
        return len(self._ids) < self.size

    def clear(self) -> None:
        """A new connection: paho forgets the QoS 0 messages it had not written, and acknowledges the QoS 1/2 ones
        it sends again, if at all, under ids the new window does not hold. Noted acknowledgements stay (one may
        belong to a message the sender has yet to put in)."""
        self._ids.clear()

    def _settle(self) -> None:
        self._ids.difference_update(self._acks)
        self._acks.clear()


class Link:
    """The one connection of an instance: made in `__init__` (a TLS file that cannot be loaded is a ConfigError),
    opened by `connect()`, closed by `close()`. `on_session` (called with `lock` held) learns of each connection
    made, `on_message` (not held) of each message received."""

    client: mqtt.Client

    def __init__(self, config: MqttConfig, client_id: str, lock: threading.Condition, *, will: Message,
                 subscriptions: Iterable[str], tls_paths: Callable[[str], str | None],
                 on_session: Callable[[], None], on_message: Callable[[mqtt.MQTTMessage], None]) -> None:
        self.config, self.client_id, self._lock = config, client_id, lock
        self._subscriptions: list[tuple[str, int]] = [(topic, config.qos) for topic in subscriptions]
        self._on_session, self._on_message = on_session, on_message
        self.window = InFlight(IN_FLIGHT)
        self.connected = False
        #: set by the publisher when it closes: what goes wrong from then on is no outage
        self.closing = False
        self.session = 0  # counts connections, so a QoS 0 message of a lost connection is not waited for
        #: monotonic time of the last sign of life while messages are in flight (a send from idle, or an ack)
        self._progress = 0.0
        # the health: the connection's state since when, the last error, and the outage (the monotonic time it
        # began, None while well) that has logged its one warning
        self._state, self._since, self._last_error = CONNECTING, time.monotonic(), ""
        self._outage: float | None = None
        #: when the current connection was made, and when the last few short-lived ones ended (a takeover)
        self._connected_at = 0.0
        self._short_lived: deque[float] = deque(maxlen=TAKEOVER_SESSIONS)
        self._taken_over = False
        self._tls = self._tls_context(tls_paths) if config.tls.enabled else None
        self.client = self._make_client(will)

    def connect(self) -> None:
        """Connect in the background (paho's network thread), and again whenever the connection is lost."""
        self.client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        with self._lock:
            self._set_state(CLOSED)

    def health(self) -> dict[str, object]:
        """The connection's part of the publisher's health (called with the lock held)."""
        return {"ok": self._state in (CONNECTED, CLOSED), "state": self._state,
                "for_s": round(time.monotonic() - self._since, 1), "last_error": self._last_error,
                "broker": f"{self.config.host}:{self.config.port}", "client_id": self.client_id,
                "in_flight": len(self.window), "connections": self.session}

    # --- the sender's side --------------------------------------------------------------------------------------

    def can_send(self) -> bool:
        """Connected, with room in the window (the sender's, with the lock held)."""
        room = self.window.has_room()  # settles what was acknowledged, connected or not
        return self.connected and room

    def send(self, message: Message, session: int) -> bool:
        """Hand `message` to paho (the sender's, lock not held); False when it was lost with a connection that just
        went (QoS 0: paho keeps the others and sends them again)."""
        qos = self.config.qos
        info = self.client.publish(message.topic, message.payload, qos, message.retain)
        with self._lock:
            if qos == 0 and info.rc != mqtt.MQTT_ERR_SUCCESS:
                return False
            if qos == 0 and session != self.session:
                return True  # written, or forgotten with its connection: not waited for
            if not self.window:
                self._progress = time.monotonic()  # the clock for an acknowledgement starts now
            self.window.sent(info.mid)
            return True

    def ack_deadline(self) -> float | None:
        """When the in-flight messages are overdue: ACK_WAIT_S (or half the keepalive) after the last sign of life."""
        if not self.connected or not self.window or self._state == UNRESPONSIVE:
            return None
        return self._progress + min(ACK_WAIT_S, self.config.keepalive_s / 2)

    def check_acks(self) -> str | None:
        """A warning to log when acknowledgements stopped coming (a hung broker keeps its socket open)."""
        deadline = self.ack_deadline()
        if deadline is None or time.monotonic() < deadline:
            return None
        waiting = time.monotonic() - self._progress
        error = f"no acknowledgement for {waiting:.1f} s ({len(self.window)} messages in flight)"
        if self._went_wrong(UNRESPONSIVE, error):
            return f"MQTT broker {self.config.host}:{self.config.port} stopped answering: {error}"
        return None

    def warn(self, message: str, *args: object) -> None:
        log.warning(message + "; retrying in the background, holding up to %d messages (oldest dropped)",
                    *args, self.config.outbox_size)

    # --- the connection's health (called with the lock held) ---------------------------------------------------

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state, self._since = state, time.monotonic()

    def _went_wrong(self, state: str, error: str) -> bool:
        """The connection is not well (`state`, because of `error`); True when this begins an outage (warn)."""
        self._set_state(state)
        self._last_error = error
        if self._outage is not None or self.closing:
            return False
        self._outage = time.monotonic()
        return True

    def _went_well(self) -> float | None:
        """Connected and answering; the length of the outage this ends, if one did."""
        self._set_state(CONNECTED)
        began, self._outage = self._outage, None
        return None if began is None else time.monotonic() - began

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

    # --- the client ------------------------------------------------------------------------------------------

    def _tls_context(self, path: Callable[[str], str | None]) -> ssl.SSLContext:
        """TLS with the server's certificate checked (against tls.ca, or the system's CAs) unless tls.insecure;
        the context is kept, so a failure can be looked into with the same one (`why_unreachable`)."""
        tls = self.config.tls
        try:
            return client_tls_context(path(tls.ca), path(tls.cert), path(tls.key), tls.insecure)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"mqtt.tls: cannot load the certificates ({exc}; check mqtt.tls.ca, cert and key)") \
                from None

    def _make_client(self, will: Message) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id)
        if self.config.username:
            client.username_pw_set(self.config.username, self.config.password or None)
        if self._tls is not None:
            client.tls_set_context(self._tls)
            client.tls_insecure_set(self.config.tls.insecure)
        client.will_set(will.topic, will.payload, self.config.qos, retain=will.retain)
        client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
        client.on_connect = self._connected
        client.on_connect_fail = self._connect_failed
        client.on_disconnect = self._disconnected
        client.on_publish = self._published
        client.on_message = lambda client, userdata, message: self._on_message(message)
        return client

    # --- paho's callbacks (its network thread) ---------------------------------------------------------------

    def _connected(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason_code: ReasonCode,
                   properties: Properties | None) -> None:
        broker = (self.config.host, self.config.port)
        if reason_code.is_failure:
            with self._lock:
                warn = self._went_wrong(DISCONNECTED if self.session else CONNECTING, f"refused: {reason_code}")
            if warn:
                self.warn("MQTT broker %s:%d refused the connection: %s", *broker, reason_code)
            return
        client.subscribe(self._subscriptions)
        with self._lock:
            self.connected = True
            self.session += 1
            self.window.clear()
            self._on_session()
            outage, first = self._went_well(), self.session == 1
            self._connected_at = time.monotonic()
            self._lock.notify_all()
        if self._taken_over:
            return  # said once, when the takeovers were seen
        if first:
            log.info("MQTT connected to %s:%d as %s%s", *broker, self.client_id,
                     "" if outage is None else f" after {outage:.0f} s of trying")
        elif outage is not None:
            log.info("MQTT connected to %s:%d again after %.0f s", *broker, outage)

    def _connect_failed(self, client: mqtt.Client, userdata: object) -> None:
        with self._lock:  # the cause the outage's one look found stays the last error through its other attempts
            known = self._outage is not None and self._last_error.startswith("unreachable: ")
            warn = self._went_wrong(DISCONNECTED if self.session else CONNECTING,
                                    self._last_error if known else "unreachable")
        if warn:  # paho does not say why: one look at the broker, off its network thread, names the cause
            threading.Thread(target=self._warn_unreachable, name="mqtt-probe", daemon=True).start()

    def _warn_unreachable(self) -> None:
        reason = why_unreachable(self.config.host, self.config.port, self._tls)
        with self._lock:
            if self._state != CONNECTED:
                self._last_error = f"unreachable: {reason}"
        self.warn("MQTT broker %s:%d unreachable: %s", self.config.host, self.config.port, reason)

    def _disconnected(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                      reason_code: ReasonCode, properties: Properties | None) -> None:
        with self._lock:
            was_connected, self.connected = self.connected, False
            warn = taken_over = False
            if not self.closing:
                taken_over = was_connected and self._took_over()
                error = (f"{'connection lost' if was_connected else 'no answer'}: {reason_code}" if not self._taken_over
                         else f"taken over: another client connects as {self.client_id}")
                warn = self._went_wrong(DISCONNECTED if self.session else CONNECTING, error)
            self._lock.notify_all()
        if taken_over:
            log.error("MQTT: the broker %s:%d closed this connection %d times within %g s of opening it: another "
                      "client connects with the client id %s and takes the session over (this instance started "
                      "twice, or another board with the same mqtt.client_id): stop the other one, or give each its "
                      "own mqtt.client_id", self.config.host, self.config.port, TAKEOVER_SESSIONS, SHORT_LIVED_S,
                      self.client_id)
        elif warn and not self._taken_over:
            self.warn("MQTT connection to %s:%d lost (%s)", self.config.host, self.config.port, reason_code)

    def _published(self, client: mqtt.Client, userdata: object, mid: int, reason_code: ReasonCode,
                   properties: Properties) -> None:
        with self._lock:
            self.window.acknowledged(mid)
            self._progress = time.monotonic()
            outage = self._went_well() if self._state == UNRESPONSIVE else None
            self._lock.notify_all()
        if outage is not None:
            log.info("MQTT broker %s:%d answering again after %.0f s", self.config.host, self.config.port, outage)
