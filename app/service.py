"""systemd notify and watchdog, spoken over the socket itself (no systemd-python dependency).

Under a `Type=notify` unit systemd passes `NOTIFY_SOCKET` (a unix datagram socket; a leading `@` means the
abstract namespace) and, with `WatchdogSec=`, `WATCHDOG_USEC` (and sometimes `WATCHDOG_PID`). `ServiceMonitor`
watches a run's `Stats` from a daemon thread and tells systemd:

- `READY=1` once, after the first processed frame, or as soon as the camera is known to be down and waited for
  (the service is up: it will carry on when the camera answers; STATUS says what it waits for); with several
  cameras, once each has processed a frame, is waited for, or has ended or failed;
- `WATCHDOG=1` every `WATCHDOG_USEC / 2`, but only while frames are being processed (a result, or a frame motion
  gating chose to skip, within the last `stall_after_s`, by default the watchdog interval) or the source is down
  and being retried, so a hung camera or interpreter gets the service restarted while a camera that is away is
  waited for. With several cameras, every camera still meant to run must be so: one whose file ended, or that
  failed for good, is no longer asked for, one that failed and waits to be rebuilt counts as retried, and one
  rebuilt has `stall_after_s` for its first frame; once no camera is left meant to run, nothing is fed;
- `STATUS=` every few seconds: fps and inference ms p50 (what `systemctl status smartcam` shows), and with several
  cameras each one's state, by name (`failed: REASON` for a camera that failed);
- `STOPPING=1` on `stop()`.

Outside systemd (no `NOTIFY_SOCKET`) everything here is silent and costs nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from app.metrics import ENDED, FAILED, RESTARTING, RUNNING, Stats

log = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0
#: how long without a result counts as stalled in STATUS when there is no watchdog to take it from
DEFAULT_STALL_S = 30.0


def sd_notify(message: str) -> bool:
    """Send one notification (`READY=1`, `WATCHDOG=1`, `STATUS=...`) to systemd; False when not under systemd
    or when the send failed (never raises: a status message is not worth stopping the camera for)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.debug("NOTIFY_SOCKET %r: not a unix socket path, not notifying", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError as exc:
        log.debug("sd_notify %r to %r failed: %s", message, address, exc)
        return False


def watchdog_interval() -> float | None:
    """The watchdog timeout in seconds systemd expects pings within, or None when there is none for this
    process (no `WATCHDOG_USEC`, or a `WATCHDOG_PID` that names another process)."""
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None


def _source(stats: Stats) -> dict[str, object] | None:
    report = stats.health.get("source")
    return report() if report else None


def _source_retrying(stats: Stats) -> bool:
    """The camera is down and its capture thread is retrying it (waiting for the camera, not hung)."""
    source = _source(stats)
    return bool(source and source.get("retrying"))


class ServiceMonitor:
    """Tells systemd how a run is doing, from the `Stats` of each of its cameras: `start()` when the pipelines are
    built, `stop()` when they have ended. The service is ready, and alive, when every camera is."""

    def __init__(self, *cameras: Stats, stall_after_s: float | None = None) -> None:
        self.cameras = cameras
        self.watchdog_s = watchdog_interval()
        self.stall_after_s = stall_after_s or self.watchdog_s or DEFAULT_STALL_S
        self.ready = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(os.environ.get("NOTIFY_SOCKET"))

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        log.debug("systemd notify on; watchdog %s", f"every {self.watchdog_s / 2:.1f} s" if self.watchdog_s else "off")
        self._thread = threading.Thread(target=self._run, name="systemd-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None or self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(2.0)
        self._ready_once(time.monotonic())  # a run shorter than one tick was still ready before it stopped
        sd_notify("STOPPING=1\nSTATUS=stopping")

    def _ready_once(self, now: float) -> None:
        if not self.ready and all(stats.processed > 0 or _source_retrying(stats) or stats.state != RUNNING
                                  for stats in self.cameras):
            self.ready = sd_notify(f"READY=1\nSTATUS={self.status(now)}")

    def frames_flowing(self, now: float | None = None) -> bool:
        """Every camera had a frame inferred, or skipped by motion gating, within the last `stall_after_s`."""
        now = time.monotonic() if now is None else now
        return all(self._flowing(stats, now) for stats in self.cameras)

    def _flowing(self, stats: Stats, now: float) -> bool:
        """A frame handled within `stall_after_s` (or, for a camera rebuilt since its last frame, the rebuild)."""
        last = max((t for t in (stats.last_handled(), stats.restarted) if t is not None), default=None)
        return last is not None and now - last <= self.stall_after_s

    def alive(self, now: float) -> bool:
        """What the watchdog is fed for: at every camera still meant to run (not ended, not failed for good), frames
        flowing, a camera that is away waited for, or a failed one waiting to be rebuilt; and one such camera at
        least."""
        living = [stats for stats in self.cameras if stats.state not in (ENDED, FAILED)]
        return bool(living) and all(self._flowing(stats, now) or _source_retrying(stats)
                                    or stats.state == RESTARTING for stats in living)

    def status(self, now: float | None = None) -> str:
        """One line for `systemctl status`: recent fps and inference p50, or what is being waited for; with several
        cameras, each camera's, by name."""
        now = time.monotonic() if now is None else now
        if len(self.cameras) == 1:
            return self._status(self.cameras[0], now)
        return " · ".join(f"{stats.info.get('camera')}: {self._status(stats, now)}" for stats in self.cameras)

    def _status(self, stats: Stats, now: float) -> str:
        if stats.state in (FAILED, RESTARTING):
            return f"failed: {stats.last_failure}{'; rebuilt after a backoff' if stats.state == RESTARTING else ''}"
        if stats.state == ENDED:
            return f"ended: {stats.processed} frames"
        processed = stats.processed
        source = _source(stats)
        if source and not source.get("ok"):
            return (f"waiting for the camera: {source.get('state')}, {source.get('attempts')} attempts in "
                    f"{source.get('for_s')} s: {source.get('last_error')}")
        if processed == 0:
            return "starting: waiting for the first frame"
        if not self._flowing(stats, now):
            return f"stalled: no frame processed for {now - (stats.last_handled() or now):.0f} s"
        fps = stats.recent_fps()
        p50 = stats.percentile("inference", 50)
        inference = f", inference {p50:.1f} ms p50" if p50 is not None else ""
        return f"running: {fps:.1f} fps{inference}, {processed} frames"

    def _run(self) -> None:
        ping_s = self.watchdog_s / 2 if self.watchdog_s else None
        tick = min(0.25, ping_s or 0.25)
        next_ping = next_status = 0.0
        while not self._stop.wait(tick):
            now = time.monotonic()
            if not self.ready:
                self._ready_once(now)
                if self.ready:  # READY carried a STATUS
                    next_status = now + STATUS_EVERY_S
            if ping_s and now >= next_ping:
                if self.alive(now):
                    sd_notify("WATCHDOG=1")
                next_ping = now + ping_s
            if now >= next_status:
                sd_notify(f"STATUS={self.status(now)}")
                next_status = now + STATUS_EVERY_S
