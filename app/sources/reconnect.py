"""Reconnecting: the one wrapper every live source gets, so a camera or stream that is down (at start or mid-run)
is waited for inside the process, never a reason to exit.

Owns the loop of open → read → (failure) → close → wait → open again, with a doubling backoff capped at
`camera.reconnect.max_delay_s`, and the source's health as others read it (`/healthz`, `/api/stats`, MQTT stats,
`/metrics`, systemd's STATUS): its state, how many attempts since it last delivered, the last error (credentials
of any URL in it masked: app/redact.py) and since when. A down source is said once when it goes down and once
when it is back, not at every attempt. A source whose read hangs without failing (a driver that stops delivering,
a stream whose timeout never fires) is `stalled` once no frame came for `STALLED_S`: down to every reader, though
the capture thread is still waiting in the read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.config import ReconnectConfig
from app.errors import SourceError
from app.metrics import CONNECTED
from app.redact import mask_credentials
from app.sources.base import Captured, EndOfStream, Source

log = logging.getLogger(__name__)

CONNECTING, RECONNECTING, STOPPED = "connecting", "reconnecting", "stopped"


#: longest an open is given (FFmpeg's open timeout is 10 s) before a source that is not retried looks hung
ATTEMPT_TIMEOUT_S = 15.0
#: how long a connected source may go without a frame before it is shown as down (`stalled`): longer than FFmpeg's
#: read timeout (10 s), after which a stream's read fails and is retried as any lost source is
STALLED_S = 20.0
STALLED = "stalled"


@dataclass
class SourceHealth:
    """What is known of the source right now; written by the capture thread, read by anyone."""

    #: the longest wait between attempts (camera.reconnect.max_delay_s)
    max_delay_s: float = 5.0
    state: str = CONNECTING
    #: failed opens and reads since the source last delivered a frame
    attempts: int = 0
    last_error: str = ""
    #: monotonic time the state began
    since: float = field(default_factory=time.monotonic)
    #: monotonic time of the last attempt to open (the source is being retried, not hung)
    last_attempt: float | None = None
    #: monotonic time the last frame was delivered
    last_frame: float | None = None

    def document(self) -> dict[str, object]:
        """The health as /api/stats and MQTT stats show it. `retrying`: down, and the last attempt began recently
        enough that the capture thread is waiting between attempts, not hung in one. A connected source with no
        frame for `STALLED_S` is `stalled`, not ok, since its last frame."""
        now = time.monotonic()
        retrying = (self.state in (CONNECTING, RECONNECTING) and self.last_attempt is not None
                    and now - self.last_attempt <= self.max_delay_s + ATTEMPT_TIMEOUT_S)
        state, since = self.state, self.since
        if state == CONNECTED and self.last_frame is not None and now - self.last_frame > STALLED_S:
            state, since = STALLED, self.last_frame
        return {"ok": state == CONNECTED, "state": state, "attempts": self.attempts,
                "last_error": self.last_error, "for_s": round(now - since, 1), "retrying": retrying}

    @property
    def down(self) -> bool:
        return self.state in (CONNECTING, RECONNECTING) and self.attempts > 0


class Reconnecting(Source):
    """`inner`, reopened with capped backoff whenever it fails; `read` waits until it delivers or `stopping` is set,
    and then raises EndOfStream."""

    def __init__(self, inner: Source, reconnect: ReconnectConfig, stopping: threading.Event,
                 on_failure: Callable[[], None] = lambda: None) -> None:
        self.inner = inner
        self._on_failure = on_failure
        self.description = mask_credentials(inner.description)  # what every output names it by
        self.live = inner.live  # a camera is; a file waited for (a disk not mounted) is read in full once there
        self.health = SourceHealth(max_delay_s=reconnect.max_delay_s)
        self._reconnect = reconnect
        self._stopping = stopping
        self._open = False
        self._delay = reconnect.initial_delay_s

    def open(self) -> None:
        """Try once; a failure is not raised but waited out by `read`."""
        self._try_open()

    def read(self) -> Captured:
        while not self._stopping.is_set():
            if not self._open and not self._wait_and_open():
                continue
            try:
                captured = self.inner.read()
            except OSError as exc:
                self._failed(exc, "lost")
                continue
            finally:
                self.decode_errors = self.inner.decode_errors  # what it skipped on the way, counted by the pipeline
            if self.health.state != CONNECTED:
                self._set(CONNECTED)
            self.health.last_frame = time.monotonic()
            self.health.attempts, self._delay = 0, self._reconnect.initial_delay_s
            return captured
        self._set(STOPPED)
        raise EndOfStream(self.description)

    def close(self) -> None:
        self._open = False
        self.inner.close()

    def _wait_and_open(self) -> bool:
        if self._stopping.wait(self._delay):
            return False
        self._delay = min(self._delay * 2, self._reconnect.max_delay_s)
        return self._try_open()

    def _try_open(self) -> bool:
        self.health.last_attempt = time.monotonic()
        try:
            self.inner.open()
        except (SourceError, OSError) as exc:
            self._failed(exc, "cannot open")
            return False
        self._open = True
        if self.health.attempts:
            log.info("source %s is back after %d attempts", self.description, self.health.attempts)
        return True

    def _failed(self, exc: BaseException, what: str) -> None:
        self._on_failure()
        self.inner.close()
        self._open = False
        self.health.attempts += 1
        self.health.last_error = error = mask_credentials(str(exc))  # errors may echo the URL they could not open
        if self.health.state in (CONNECTING, CONNECTED):
            log.warning("source %s: %s (%s); retrying, at least every %g s, until it answers", self.description,
                        what, error, self._reconnect.max_delay_s)
            self._set(RECONNECTING)
        else:
            log.debug("source %s: attempt %d failed: %s", self.description, self.health.attempts, error)

    def _set(self, state: str) -> None:
        self.health.state, self.health.since = state, time.monotonic()
