"""What the capture lane says when it opens its source: "opened" only when the source really opened; a camera that
did not open at start is said to be waited for, and "opened" once its first frame comes."""

from __future__ import annotations

import logging
import threading

from app.capture_lane import CaptureLane
from app.config import load_settings
from app.errors import SourceError
from app.metrics import Stats
from conftest import FakeCamera, wait_for


class LateCamera(FakeCamera):
    """A camera that refuses its first `refusals` opens, as one still booting or unplugged at start does."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals

    def open(self) -> None:
        super().open()
        if self.opens <= self.refusals:
            raise SourceError("no answer")


def lane_of(camera: FakeCamera, stop: threading.Event) -> CaptureLane:
    settings = load_settings("classify", None, ["camera.source=pattern", "camera.reconnect.initial_delay_s=0.01"])
    return CaptureLane(settings, camera, (224, 224), [], Stats(), stop, lambda: None)


def lane_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "app.capture_lane"]


def test_a_camera_that_opens_is_said_opened_once(caplog):
    caplog.set_level(logging.INFO)
    stop = threading.Event()
    lane = lane_of(LateCamera(refusals=0), stop)
    lane.open()
    assert [line for line in lane_lines(caplog) if "source" in line] == [
        "cam0: source fake test camera opened (live: newest frame wins)"]


def test_a_camera_that_did_not_open_is_waited_for_and_said_opened_at_its_first_frame(caplog):
    caplog.set_level(logging.INFO)
    stop = threading.Event()
    camera = LateCamera(refusals=3)
    lane = lane_of(camera, stop)
    lane.open()
    assert [line for line in lane_lines(caplog) if "source" in line] == [
        "cam0: source fake test camera did not open: waiting for it"]
    runner = threading.Thread(target=lane.run, daemon=True)
    runner.start()
    wait_for(lambda: any("opened" in line for line in lane_lines(caplog)), "the opened line")
    stop.set()
    lane.slot.close()
    runner.join(10)
    assert not runner.is_alive()
    assert [line for line in lane_lines(caplog) if "source" in line] == [
        "cam0: source fake test camera did not open: waiting for it",
        "cam0: source fake test camera opened (live: newest frame wins)"]
    assert camera.opens == 4 and camera.reads >= 1  # opened at the fourth attempt, and then read
