"""systemd notify + watchdog: a unix datagram socket stands in for systemd, the real pipeline runs the pet SSD."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

import app.service
from app.config import load_settings
from app.errors import SourceError
from app.metrics import Stats
from app.pipeline import Pipeline
from app.service import ServiceMonitor, sd_notify, watchdog_interval
from conftest import PET, PROJECT, Background, FakeCamera, wait_for

WATCHDOG_S = 1.0


class FakeSystemd:
    """Listens where NOTIFY_SOCKET points and keeps every message with the time it arrived."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def lines(self, prefix: str, since: float = 0.0) -> list[tuple[float, str]]:
        """Every `KEY=value` line starting with prefix (a datagram may carry several lines)."""
        return [(t, line) for t, message in list(self.messages) if t >= since
                for line in message.splitlines() if line.startswith(prefix)]

    def wait_for(self, prefix: str, count: int = 1, timeout: float = 30.0, since: float = 0.0) -> None:
        wait_for(lambda: len(self.lines(prefix, since)) >= count,
                 lambda: f"{count}x {prefix!r} (got {self.messages})", timeout, interval=0.02)


@pytest.fixture
def systemd(tmp_path, monkeypatch):
    """A fake systemd on a socket file, with NOTIFY_SOCKET and a 0.4 s WATCHDOG_USEC in the environment."""
    folder = tmp_path if len(str(tmp_path)) < 80 else Path(tempfile.mkdtemp(prefix="sd"))  # sun_path is 108 bytes
    path = str(folder / "notify.sock")
    listener = FakeSystemd(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", str(int(WATCHDOG_S * 1e6)))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setattr(app.service, "STATUS_EVERY_S", 0.5)
    yield listener
    listener.close()


def test_ready_then_watchdog_while_frames_flow_and_none_once_the_camera_stalls(systemd):
    camera = FakeCamera(description="stalling test camera")
    # a still picture: motion gating would skip its frames, which feeds the watchdog too (tested below)
    pipeline = Pipeline(load_settings("detect", None, [*PET, "camera.motion.enabled=false"]), [], source=camera)
    stats = pipeline.stats
    monitor = ServiceMonitor(stats)
    assert monitor.watchdog_s == pytest.approx(WATCHDOG_S) and monitor.stall_after_s == pytest.approx(WATCHDOG_S)
    monitor.start()
    try:
        with Background(pipeline):
            systemd.wait_for("READY=1")
            systemd.wait_for("WATCHDOG=1", count=4)
            ready_at = systemd.lines("READY=1")[0][0]
            assert systemd.lines("WATCHDOG=1")[0][0] >= ready_at  # no ping before the service said it was up
            assert len(systemd.lines("READY=1")) == 1
            systemd.wait_for("STATUS=running", count=2)
            status = systemd.lines("STATUS=running")[-1][1]
            assert " fps" in status and "ms p50" in status, status

            camera.stall()
            wait_for(camera.waiting.is_set, "the camera to hang in read()")
            captured = stats.captured  # and no frame after this one
            wait_for(lambda: stats.processed + stats.drops["stale"] == captured, "the frames in flight to be done")
            last_result = stats.last_result
            assert last_result is not None and stats.processed >= 10
            time.sleep(max(0.0, last_result + 2 * WATCHDOG_S - time.monotonic()))  # that result is two intervals old
            quiet_from = time.monotonic()
            time.sleep(3 * WATCHDOG_S)
            assert systemd.lines("WATCHDOG=1", since=quiet_from) == [], "pinged the watchdog with no frames flowing"
            assert (stats.captured, stats.last_result) == (captured, last_result)  # the camera really was stalled
            last_ping = systemd.lines("WATCHDOG=1")[-1][0]
            assert last_ping <= last_result + WATCHDOG_S + 0.5  # pings ended within one interval of the last frame
            systemd.wait_for("STATUS=stalled", since=quiet_from)
    finally:
        camera.flow()  # the pipeline stopped: its capture thread may go
        monitor.stop()
    systemd.wait_for("STOPPING=1", timeout=2)


def _feed(stats: Stats, stop: threading.Event) -> None:
    while not stop.wait(0.02):
        stats.observe({"inference": 5.0})


def test_abstract_namespace_socket(monkeypatch):
    name = f"smartcam-test-{uuid.uuid4().hex}"
    listener = FakeSystemd("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        assert sd_notify("READY=1\nSTATUS=hello")
        listener.wait_for("STATUS=hello", timeout=2)
    finally:
        listener.close()


def test_monitor_on_an_abstract_socket_pings_while_results_come(monkeypatch):
    name = f"smartcam-test-{uuid.uuid4().hex}"
    listener = FakeSystemd("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    stats, stop = Stats(), threading.Event()
    feeder = threading.Thread(target=_feed, args=(stats, stop), daemon=True)
    monitor = ServiceMonitor(stats)
    try:
        monitor.start()
        time.sleep(0.3)
        assert listener.lines("READY=1") == []  # nothing processed yet: not ready
        feeder.start()
        listener.wait_for("READY=1", timeout=5)
        listener.wait_for("WATCHDOG=1", count=3, timeout=5)
    finally:
        stop.set()
        monitor.stop()
        listener.close()
    assert listener.lines("STOPPING=1")


def test_without_watchdog_usec_ready_status_and_stopping_but_no_pings(systemd, monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC")
    stats, stop = Stats(), threading.Event()
    feeder = threading.Thread(target=_feed, args=(stats, stop), daemon=True)
    feeder.start()
    monitor = ServiceMonitor(stats)
    assert monitor.watchdog_s is None
    monitor.start()
    try:
        systemd.wait_for("READY=1", timeout=5)
        systemd.wait_for("STATUS=running", count=2, timeout=5)
    finally:
        stop.set()
        monitor.stop()
    systemd.wait_for("STOPPING=1", timeout=2)
    assert systemd.lines("WATCHDOG=1") == []


def test_a_watchdog_meant_for_another_process_is_not_ours(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == pytest.approx(0.4)


def test_silent_outside_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    assert sd_notify("READY=1") is False
    stats = Stats()
    stats.observe({"inference": 1.0})
    monitor = ServiceMonitor(stats)
    monitor.start()
    assert monitor._thread is None  # no thread at all
    monitor.stop()


def test_a_socket_that_is_gone_never_raises(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    assert sd_notify("WATCHDOG=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")  # newer systemd's other transport: not spoken here
    assert sd_notify("READY=1") is False


def test_the_run_command_tells_systemd(tmp_path):
    """`python -m app` as the unit starts it: READY after the first frame, STOPPING at the end."""
    address = str(tmp_path / "notify.sock")
    systemd = FakeSystemd(address)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "app", "run", "--pipeline", "detect", "--source", "pattern", "--max-frames", "5",
             *[arg for override in PET for arg in ("--set", override)]],
            cwd=PROJECT, env={**os.environ, "NOTIFY_SOCKET": address},
            capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        systemd.wait_for("STOPPING=1")
        assert systemd.lines("READY=1") and systemd.lines("READY=1")[0][0] <= systemd.lines("STOPPING=1")[0][0]
    finally:
        systemd.close()


class AwayCamera(FakeCamera):
    """A camera that is not there (its open fails) until `arrive()`."""

    def __init__(self) -> None:
        super().__init__(description="away test camera")
        self.here = threading.Event()

    def open(self) -> None:
        super().open()
        if not self.here.is_set():
            raise SourceError("cannot open away test camera: no such device")

    def arrive(self) -> None:
        self.here.set()


def test_a_camera_down_at_start_is_ready_and_fed_while_waited_for(systemd):
    """Under systemd a camera that is away is not a hung service: READY, STATUS says what for, WATCHDOG goes on."""
    camera = AwayCamera()
    settings = load_settings("detect", None, [*PET, "camera.reconnect.initial_delay_s=0.05",
                                              "camera.reconnect.max_delay_s=0.2"])
    pipeline = Pipeline(settings, [], source=camera)
    monitor = ServiceMonitor(pipeline.stats)
    monitor.start()
    try:
        with Background(pipeline):
            systemd.wait_for("READY=1")
            waiting_from = systemd.lines("READY=1")[0][0]
            systemd.wait_for("WATCHDOG=1", count=4, since=waiting_from)
            status = systemd.lines("STATUS=waiting for the camera: reconnecting")
            assert status and "no such device" in status[-1][1], systemd.messages
            assert pipeline.stats.processed == 0 and camera.opens >= 4  # fed while nothing was processed
            camera.arrive()
            systemd.wait_for("STATUS=running", since=time.monotonic())
            assert pipeline.stats.processed > 0
    finally:
        monitor.stop()
