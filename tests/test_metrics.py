"""One meaning per word in the run's numbers: `fps` is the recent rate wherever it is shown live, `mean fps` the
whole run's average; `source_description` (the device) is not the results' `source` (the camera)."""

from __future__ import annotations

import pytest

from app.metrics import RATE_WINDOW_S, Stats


class Clock:
    """A monotonic clock the test moves by hand, so rates are exact and nothing waits."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("app.metrics.time.monotonic", fake)
    return fake


def _twenty_a_second_for_ten_seconds(clock: Clock) -> Stats:
    stats = Stats()
    for _ in range(200):
        clock.now += 0.05
        stats.observe({"inference": 5.0})
    return stats


def test_fps_is_the_recent_rate_and_mean_fps_the_whole_run(clock):
    stats = _twenty_a_second_for_ten_seconds(clock)
    assert stats.recent_fps() == pytest.approx(20, abs=0.5) and stats.mean_fps() == pytest.approx(20)
    clock.now += 2 * RATE_WINDOW_S  # a stall: the recent rate falls to 0, the run's average does not
    assert stats.recent_fps() == 0 and stats.mean_fps() == pytest.approx(200 / 20)


def test_live_views_show_the_recent_rate_and_the_summary_the_mean(clock):
    stats = _twenty_a_second_for_ten_seconds(clock)
    clock.now += 2 * RATE_WINDOW_S
    assert stats.document()["fps"] == 0
    assert "\nsmartcam_fps 0\n" in stats.prometheus()
    assert ", mean 10.0 fps" in stats.summary()


def test_the_source_description_keeps_its_own_name(clock):
    stats = Stats()
    stats.info.update(camera="cam0", source_description="/dev/video0")
    document = stats.document()
    assert (document["camera"], document["source_description"]) == ("cam0", "/dev/video0")
    assert "source" not in document  # a result's `source` is the camera's name; stats never reuse the word
    info = next(line for line in stats.prometheus().splitlines() if line.startswith("smartcam_info{"))
    assert 'source_description="/dev/video0"' in info and 'camera="cam0"' in info
