"""systemd notify + watchdog: a unix datagram socket stands in for systemd, the real pipeline runs the pet SSD."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

import app.service
from app.config import load_settings
from app.errors import SourceError
from app.metrics import ENDED, FAILED, RESTARTING, RUNNING, Stats
from app.pipeline import Pipeline
from app.service import ServiceMonitor, sd_notify, watchdog_interval
from conftest import IMAGES, PET, PROJECT, Background, FakeCamera, pet_pipeline, wait_for

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


# --- several cameras: a camera that ended or failed does not starve the others -----------------------------------


def _camera(name: str, state: str = RUNNING, last_failure: str | None = None) -> Stats:
    """A camera's Stats that processed one frame long ago (stalled, if it were meant to run), in `state`."""
    stats = Stats()
    stats.info["camera"], stats.state, stats.last_failure = name, state, last_failure
    stats.observe({"inference": 5.0})
    stats.last_result = time.monotonic() - 10 * WATCHDOG_S
    return stats


@pytest.mark.parametrize(("state", "status"), [(ENDED, "left: ended: 1 frames"),
                                               (FAILED, "left: failed: the output broke"),
                                               (RESTARTING, "left: failed: the output broke; rebuilt after")])
def test_a_camera_that_ended_or_failed_does_not_starve_the_living_one(systemd, state: str, status: str):
    left, right, stop = _camera("left", state, "the output broke"), _camera("right"), threading.Event()
    feeder = threading.Thread(target=_feed, args=(right, stop), daemon=True)
    feeder.start()
    monitor = ServiceMonitor(left, right)
    monitor.start()
    try:
        systemd.wait_for("READY=1")
        systemd.wait_for("WATCHDOG=1", count=4, since=systemd.lines("READY=1")[0][0])
        systemd.wait_for(f"STATUS={status}")
        assert " · right: running: " in systemd.lines(f"STATUS={status}")[-1][1]
    finally:
        stop.set()
        monitor.stop()


def test_a_stalled_camera_still_starves_the_watchdog_beside_an_ended_one():
    ended, stalled, living = _camera("left", ENDED), _camera("middle"), _camera("right")
    now = time.monotonic()
    living.last_result = now
    assert ServiceMonitor(ended, living, stall_after_s=WATCHDOG_S).alive(now)
    assert not ServiceMonitor(ended, stalled, living, stall_after_s=WATCHDOG_S).alive(now)
    stalled.restarted = now - WATCHDOG_S / 2  # rebuilt after a failure: its first frame may take a while
    assert ServiceMonitor(ended, stalled, living, stall_after_s=WATCHDOG_S).alive(now)
    assert not ServiceMonitor(ended, stalled, living, stall_after_s=WATCHDOG_S).alive(now + WATCHDOG_S)


def test_once_no_camera_is_meant_to_run_the_watchdog_is_not_fed(systemd):
    """Every camera ended or failed for good: READY (nothing left to wait for), and no WATCHDOG=1 at all."""
    monitor = ServiceMonitor(_camera("left", ENDED), _camera("right", FAILED, "the output broke"))
    monitor.start()
    try:
        systemd.wait_for("READY=1")
        systemd.wait_for("STATUS=", count=3)  # a few ticks past READY, each a chance to ping
    finally:
        monitor.stop()
    assert systemd.lines("WATCHDOG=1") == []


def _run_cameras(config: Path, address: str) -> subprocess.Popen:
    """`python -m app --config CONFIG` as the unit starts it, telling the fake systemd at `address`."""
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6))}
    env.pop("WATCHDOG_PID", None)
    return subprocess.Popen([sys.executable, "-m", "app", "--config", str(config), "--set",
                             "stages.inference.threads=1"], cwd=PROJECT, env=env, stderr=subprocess.PIPE, text=True)


def _stopped(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=30)[1]
    finally:
        proc.kill()


def test_a_camera_that_fails_beside_a_living_one_keeps_the_watchdog_fed(tmp_path):
    """Two cameras under systemd; one reads a looped image folder that is then deleted: it fails for good, and the
    watchdog goes on being fed for the other, a live camera, with STATUS naming the failure; SIGTERM: exit 1 (a
    camera failed), and the summary line says which."""
    systemd = FakeSystemd(str(tmp_path / "notify.sock"))
    folder = tmp_path / "shots"
    folder.mkdir()
    shutil.copy(IMAGES / "cat.bmp", folder / "cat.bmp")
    pets = pet_pipeline(tmp_path)
    config = tmp_path / "cameras.yaml"
    config.write_text(yaml.safe_dump({"cameras": [
        {"name": "live", "source": "pattern", "fps": 10, "pipeline": str(pets)},
        {"name": "shots", "source": str(folder), "loop": True, "pipeline": str(pets)}]}))
    proc = _run_cameras(config, str(tmp_path / "notify.sock"))
    try:
        systemd.wait_for("READY=1", timeout=60)
        shutil.rmtree(folder)
        wait_for(lambda: [t for t, line in systemd.lines("STATUS=") if "shots: failed: none of the images" in line],
                 "STATUS naming the failed camera", 30)
        failed = [t for t, line in systemd.lines("STATUS=") if "shots: failed: none of the images" in line]
        systemd.wait_for("WATCHDOG=1", count=4, since=failed[0])
        assert "live: running" in systemd.lines("STATUS=")[-1][1]
    finally:
        stderr = _stopped(proc)
        systemd.close()
    assert proc.returncode == 1, stderr
    assert any(line.startswith("smartcam: shots: failed: none of the images") for line in stderr.splitlines())


def test_a_full_disk_and_a_missing_file_leave_the_living_camera_delivering_and_fed(tmp_path):
    """The issue's case: JSON lines on a full disk (jsonl is device-wide, so every camera's lines hit /dev/full)
    and a camera whose file is not there (yet): the live camera keeps delivering, the watchdog stays fed, and a
    stop is a clean exit."""
    systemd = FakeSystemd(str(tmp_path / "notify.sock"))
    pets = pet_pipeline(tmp_path)
    config = tmp_path / "cameras.yaml"
    config.write_text(yaml.safe_dump({
        "cameras": [{"name": "live", "source": "pattern", "fps": 10, "pipeline": str(pets)},
                    {"name": "missing", "source": str(tmp_path / "not-yet.mp4"), "pipeline": str(pets)}],
        "jsonl": {"enabled": True, "path": "/dev/full"}}))
    proc = _run_cameras(config, str(tmp_path / "notify.sock"))
    try:
        wait_for(lambda: systemd.lines("READY=1") or proc.poll() is not None, "READY=1 or the run's end", 60)
        ready_at = systemd.lines("READY=1")[0][0]
        systemd.wait_for("WATCHDOG=1", count=6, since=ready_at)
        systemd.wait_for("STATUS=live: running", since=ready_at)
    finally:
        stderr = _stopped(proc)
        systemd.close()
    assert proc.returncode == 0, stderr
    live = next(line for line in stderr.splitlines() if line.startswith("smartcam: live: "))
    assert int(live.split("processed ")[1].split(",")[0]) > 10, live
