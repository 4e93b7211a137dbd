"""The robot output over ZeroMQ: a PUB socket, one message per processed frame, sent from the inference lane.

Each message is two frames, `[topic, payload]`: the topic is `CAMERA/detections` (or `CAMERA/classification`,
`CAMERA/segments`, `CAMERA/poses`, or `CAMERA/label_info` for the class map, sent at start and every
`label_info_s`), so a subscriber picks its cameras by prefix (`cam0/`) and its messages by the rest. Sends never
wait (`NOBLOCK`); a subscriber more than SNDHWM messages behind loses its oldest in libzmq, without slowing the
camera or the other subscribers. What ZeroMQ refuses is a `zmq_error` drop.

Several cameras in one process may share one `bind`: the PUB socket is the process's, one per endpoint, counted by
its users and closed (LINGER 0) by the last; ZeroMQ sockets are not thread-safe and each camera sends from its own
inference lane, so every use of it is under its lock. A bind that fails for a reason the world may clear (the port
still held by a previous smartcam, an address or interface not up yet) never stops the camera: it is tried again
from `send` every BIND_RETRY_S (a bind is one system call), and frames meanwhile are `zmq_unbound` drops. An
endpoint that can never be bound (malformed) is a configuration error at start.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from types import ModuleType

from app.config import ZmqConfig
from app.errors import ConfigError
from app.frame import Frame
from app.outputs.robot.base import RobotContext, RobotOutput
from app.outputs.robot.message import LABEL_INFO, Messages

log = logging.getLogger(__name__)

#: messages held per subscriber before libzmq drops its oldest: about 3 s of a 30 fps camera
SNDHWM = 100
#: how often a bind that failed is tried again
BIND_RETRY_S = 1.0
#: bind errors no wait will fix: the endpoint itself is wrong
MALFORMED = {errno.EINVAL, errno.EPROTONOSUPPORT}


def load_zmq() -> ModuleType:
    """pyzmq, or a one-line error naming the fix."""
    try:
        import zmq
    except ImportError:
        raise ConfigError("zmq.enabled needs pyzmq: run ./install.sh again, or .venv/bin/pip install pyzmq") \
            from None
    return zmq


class Endpoint:
    """One PUB socket bound (or waiting to bind) to one endpoint, shared by this process's cameras."""

    def __init__(self, zmq: ModuleType, bind: str) -> None:
        self.zmq = zmq
        self.bind = bind
        self.users = 0
        self.lock = threading.Lock()
        self.socket = zmq.Context.instance().socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, SNDHWM)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.bound = False
        self.waiting_for = ""
        self._next_try = 0.0

    def try_bind(self) -> bool:
        """Bound now, or tried (at most every BIND_RETRY_S) and still not; call under `lock`."""
        now = time.monotonic()
        if self.bound or now < self._next_try:
            return self.bound
        self._next_try = now + BIND_RETRY_S
        try:
            self.socket.bind(self.bind)
        except self.zmq.ZMQError as exc:
            if exc.errno in MALFORMED:
                raise ConfigError(f"zmq.bind {self.bind}: {exc}; use tcp://ADDRESS:PORT (tcp://*:5601 for every "
                                  "interface) or ipc://PATH") from None
            if not self.waiting_for:
                log.warning("zmq: cannot bind %s yet (%s); trying again every %g s, frames meanwhile are "
                            "zmq_unbound drops", self.bind, exc, BIND_RETRY_S)
            self.waiting_for = f"cannot bind {self.bind}: {exc}"
            return False
        self.bound = True
        self.waiting_for = ""
        log.info("zmq: publishing on %s", self.bind)
        return True

    def send(self, parts: list[bytes]) -> str | None:
        """Send one message without waiting: None when sent, else why not ('' when not bound yet)."""
        with self.lock:
            if not self.try_bind():
                return ""
            try:
                self.socket.send_multipart(parts, flags=self.zmq.NOBLOCK)
            except self.zmq.ZMQError as exc:
                return str(exc)
        return None


_endpoints: dict[str, Endpoint] = {}
_endpoints_lock = threading.Lock()


def acquire(bind: str) -> Endpoint:
    """The process's socket for `bind`, made (and bound, or waiting to be) by its first user."""
    with _endpoints_lock:
        endpoint = _endpoints.get(bind)
        if endpoint is None:
            endpoint = Endpoint(load_zmq(), bind)
            try:
                with endpoint.lock:
                    endpoint.try_bind()
            except ConfigError:
                endpoint.socket.close()
                raise
            _endpoints[bind] = endpoint
        endpoint.users += 1
        return endpoint


def release(endpoint: Endpoint) -> None:
    """One user less; the last closes the socket, which frees the endpoint at once (LINGER 0)."""
    with _endpoints_lock:
        endpoint.users -= 1
        if endpoint.users == 0:
            del _endpoints[endpoint.bind]
            with endpoint.lock:
                endpoint.socket.close()


class ZmqOutput(RobotOutput):
    def __init__(self, config: ZmqConfig) -> None:
        self.config = config
        self._messages: Messages | None = None
        self._endpoint: Endpoint | None = None

    def start(self, ctx: RobotContext) -> None:
        self._endpoint = acquire(self.config.bind)
        self._messages = Messages(ctx, self.config.label_info_s)
        ctx.stats.health["zmq"] = self.health
        self._send_label_info_if_due()

    def health(self) -> dict[str, object]:
        assert self._endpoint is not None
        if self._endpoint.bound:
            return {"ok": True, "state": "bound", "bind": self.config.bind}
        return {"ok": False, "state": "waiting", "bind": self.config.bind, "last_error": self._endpoint.waiting_for}

    def send(self, frame: Frame) -> None:
        assert self._messages is not None, "start() first"
        self._send_label_info_if_due()
        kind, payload = self._messages.frame(frame)
        self._send(kind, payload)

    def _send_label_info_if_due(self) -> None:
        assert self._messages is not None
        label_info = self._messages.label_info_due()
        if label_info is not None:
            self._send(LABEL_INFO, label_info)

    def _send(self, kind: str, payload: bytes) -> None:
        assert self._messages is not None and self._endpoint is not None
        failed = self._endpoint.send([f"{self._messages.ctx.camera}/{kind}".encode(), payload])
        if failed == "":  # the endpoint said so when it could not bind
            self._messages.ctx.stats.drop("zmq_unbound")
        elif failed is not None:
            self._messages.drop("zmq_error", failed, f"zmq: sending on {self.config.bind} failed: {failed}")

    def close(self) -> None:
        if self._endpoint is not None:
            release(self._endpoint)
            self._endpoint = None
