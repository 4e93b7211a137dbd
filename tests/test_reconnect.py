"""The Reconnecting wrapper, without a model: a source down at start or lost mid-run is waited for with a capped
backoff, its health is visible, it is said once, and a stop ends the wait."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from app.config import CameraConfig, ReconnectConfig
from app.errors import SourceError
from app.sources.auto import AutoCamera
from app.sources.base import Captured, EndOfStream, Source
from app.sources import reconnect
from app.sources.reconnect import CONNECTED, RECONNECTING, STALLED, STALLED_S, STOPPED, Reconnecting

FRAME = Captured(np.zeros((4, 4, 3), np.uint8))


class Scripted(Source):
    """A camera whose opens and reads follow a script: 'down' fails an open, 'lost' fails a read."""

    def __init__(self, opens: list[str], reads: list[str]) -> None:
        self.description = "scripted camera"
        self.opens, self.reads = opens, reads
        self.open_calls = self.close_calls = 0

    def open(self) -> None:
        self.open_calls += 1
        if self.opens and self.opens.pop(0) == "down":
            raise SourceError("cannot open scripted camera: connection refused")

    def read(self) -> Captured:
        if self.reads and self.reads.pop(0) == "lost":
            raise OSError("scripted camera: no frame")
        return FRAME

    def close(self) -> None:
        self.close_calls += 1


class RecordedWaits(threading.Event):
    """A stop event whose waits return at once and are recorded, so backoff is checked without sleeping."""

    def __init__(self, stop_after: int | None = None) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.stop_after = stop_after

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        if self.stop_after is not None and len(self.waits) >= self.stop_after:
            self.set()
        return self.is_set()


BACKOFF = ReconnectConfig(initial_delay_s=1, max_delay_s=5)


def test_a_source_down_at_start_is_waited_for_with_a_capped_backoff(caplog):
    camera = Scripted(opens=["down"] * 6, reads=[])
    waits = RecordedWaits()
    source = Reconnecting(camera, BACKOFF, waits)
    with caplog.at_level(logging.INFO):
        source.open()  # does not raise
        assert source.health.state == RECONNECTING and source.health.attempts == 1
        assert "connection refused" in source.health.last_error
        assert source.read() is FRAME
    assert waits.waits == [1, 2, 4, 5, 5, 5]
    assert source.health.state == CONNECTED and source.health.attempts == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "retrying, at least every 5 s" in warnings[0]
    assert any("is back after 6 attempts" in r.getMessage() for r in caplog.records)


def test_a_source_lost_mid_run_is_reopened_and_the_backoff_starts_again():
    camera = Scripted(opens=["up", "down", "up", "up"], reads=["ok", "lost", "ok", "lost", "ok"])
    failures: list[int] = []
    waits = RecordedWaits()
    source = Reconnecting(camera, BACKOFF, waits, on_failure=lambda: failures.append(1))
    source.open()
    frames = [source.read() for _ in range(3)]
    assert frames == [FRAME] * 3 and len(failures) == 3
    assert waits.waits == [1, 2, 1]  # lost, down (doubled), then lost again after a frame: from the start
    assert source.health.state == CONNECTED and camera.close_calls >= 3


def test_a_stop_ends_the_wait_with_end_of_stream():
    camera = Scripted(opens=["down"] * 100, reads=[])
    waits = RecordedWaits(stop_after=3)
    source = Reconnecting(camera, BACKOFF, waits)
    source.open()
    with pytest.raises(EndOfStream):
        source.read()
    assert source.health.state == STOPPED and source.health.attempts == 3


def test_health_is_a_document():
    source = Reconnecting(Scripted(opens=["down"], reads=[]), BACKOFF, RecordedWaits())
    source.open()
    document = source.health.document()
    assert document["state"] == "reconnecting" and document["attempts"] == 1
    assert "connection refused" in str(document["last_error"]) and isinstance(document["for_s"], float)


def test_auto_with_no_camera_yet_fails_the_open_with_what_to_pass(monkeypatch):
    monkeypatch.setattr("app.sources.auto.picamera2_cameras", lambda: [])
    monkeypatch.setattr("app.sources.auto.v4l2_capture_cameras", lambda: [])
    auto = AutoCamera(CameraConfig(source="auto"), None)
    assert auto.reconnects
    with pytest.raises(SourceError) as error:
        auto.open()
    for alternative in ("--source /dev/video0", "--source rtsp://", "--source clip.mp4", "--source pattern"):
        assert alternative in str(error.value)


def test_a_connected_source_whose_read_hangs_is_shown_down_until_a_frame_comes(monkeypatch):
    clock = [1000.0]  # the health's clock, stepped by the test
    monkeypatch.setattr(reconnect, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    source = Reconnecting(Scripted(opens=["up"], reads=["ok", "ok", "ok"]), BACKOFF, RecordedWaits())
    source.open()
    source.read()
    clock[0] += 5
    source.read()  # connected since the first frame; stalled counts from the last
    clock[0] += STALLED_S  # no frame for exactly STALLED_S: still connected
    assert source.health.document()["ok"] is True
    clock[0] += 1  # the next read has hung past it
    document = source.health.document()
    assert document["state"] == STALLED and document["ok"] is False and document["for_s"] == STALLED_S + 1
    source.read()
    assert source.health.document()["ok"] is True and source.health.document()["state"] == CONNECTED
