"""Snapshots: real runs of the pet model write a JPEG when a cat appears — named by UTC time and label, written
atomically, one per label per cooldown, pruned by count and size oldest-written first whatever the wall clock does,
paused on a nearly full disk, never fatal."""

from __future__ import annotations

import logging
import re
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from app.config import OverlayParams
from app.scene.label_events import Event
from app.frame import Detection, Frame
from app.metrics import Stats
from app.pipeline import Pipeline
from app.outputs import PublishContext, build_publishers
from app.outputs.base import Output
from app.outputs.snapshots import SnapshotPublisher, snapshot_name
from conftest import (BLANK, CAT_BREEDS, IMAGES, Collector, FakeCamera, alternating_folder, cat_settings, decode_jpeg,
                      imread, wait_for)

#: this version's names (UTC, `Z`) and older versions' (local time)
SNAPSHOT = re.compile(r"(\d{8}-\d{6}-\d{3})(Z(?:-\d+)?)?_cam0_([A-Za-z0-9_-]+)\.jpg")


def snapshots_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if SNAPSHOT.fullmatch(p.name))


def taken(name: str) -> tuple[datetime, str]:
    """When a snapshot this version wrote was taken and of which label, from its file name."""
    match = SNAPSHOT.fullmatch(name)
    assert match and match.group(2), name
    return datetime.strptime(match.group(1), "%Y%m%d-%H%M%S-%f").replace(tzinfo=timezone.utc), match.group(3)


def last_name(snapshots: SnapshotPublisher) -> str:
    assert snapshots.last_path is not None, "no snapshot written"
    return snapshots.last_path.name


def fill(folder: Path, names: list[str], size: int) -> None:
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"\xff\xd8" + bytes(size - 2))


def test_a_cat_appearing_writes_one_valid_jpeg_per_label_named_by_time(tmp_path, cat_clip):
    settings = cat_settings(tmp_path, f"camera.source={cat_clip}", "snapshots.cooldown_s=3600")
    publishers = build_publishers(settings)
    snapshots = next(p for p in publishers if isinstance(p, SnapshotPublisher))
    events = Collector()
    started = time.time()
    stats = Pipeline(settings, [events, *publishers]).run()

    folder = tmp_path / "snaps"
    names = sorted(p.name for p in folder.iterdir())
    assert names == snapshots_in(folder), names  # nothing else: no temporary files left behind
    labels = [taken(name)[1] for name in names]
    assert events.appeared() and set(events.appeared()) <= CAT_BREEDS
    assert sorted(labels) == sorted(set(events.appeared()))  # one per label, however often it appeared
    for name in names:
        stamp = taken(name)[0].timestamp()
        assert started - 1 <= stamp <= time.time()
        data = (folder / name).read_bytes()
        assert data[:2] == b"\xff\xd8"
        assert decode_jpeg(data).shape == (720, 1280, 3)
    assert snapshots.last_path == folder / names[-1]
    assert stats.processed == 90 and not stats.drops


def test_a_folder_alternating_cat_and_no_cat_gives_one_snapshot_per_cooldown(tmp_path):
    settings = cat_settings(tmp_path, f"camera.source={alternating_folder(tmp_path, cats=3)}",
                            "snapshots.cooldown_s=3600")
    events = Collector()
    Pipeline(settings, [events, SnapshotPublisher(settings.device.snapshots)]).run()
    assert len(events.appeared()) == 3
    assert len(snapshots_in(tmp_path / "snaps")) == 1


def test_each_appearance_outside_the_cooldown_gets_a_snapshot(tmp_path):
    """Cats at about 0, 0.3, 1.5 and 1.8 s with a 1 s cooldown: snapshots at 0 and 1.5 s only."""
    cat = imread(IMAGES / "cat.bmp")
    settings = cat_settings(tmp_path, "snapshots.cooldown_s=1")
    events = Collector()
    snapshots = SnapshotPublisher(settings.device.snapshots)
    shots = [(0, cat), (0.15, BLANK), (0.15, cat), (0.15, BLANK), (1.05, cat), (0.15, BLANK), (0.15, cat)]
    slideshow = FakeCamera([image for _, image in shots], pause=[pause for pause, _ in shots], live=False)
    Pipeline(settings, [events, snapshots], slideshow).run()

    assert len(events.appeared()) == 4
    names = snapshots_in(tmp_path / "snaps")
    assert len(names) == 2, names
    first, second = (taken(name)[0] for name in names)
    assert (second - first).total_seconds() >= 1.0
    assert last_name(snapshots) == names[-1]


def test_retention_by_count_deletes_the_oldest_of_its_own_files_only(tmp_path):
    folder = tmp_path / "snaps"
    old = [f"2020010{day}-120000-000_cam0_Bengal.jpg" for day in range(1, 6)]
    others = ["20200101-000000-000_cam1_Bengal.jpg", "holiday.jpg", "notes.txt"]
    fill(folder, old + others, 1000)
    stale = folder / ".20200106-120000-000_cam0_Bengal.jpg.tmp"  # a write a power cut interrupted
    stale.write_bytes(b"\xff")
    settings = cat_settings(tmp_path, f"camera.source={IMAGES / 'cat.bmp'}", "snapshots.max_files=3")
    snapshots = SnapshotPublisher(settings.device.snapshots)
    Pipeline(settings, [snapshots]).run()

    assert snapshots_in(folder) == [*old[-2:], last_name(snapshots)]
    assert all((folder / name).exists() for name in others)
    assert not stale.exists()


def test_retention_by_size_deletes_the_oldest_until_the_folder_fits(tmp_path):
    folder = tmp_path / "snaps"
    old = [f"2020010{day}-120000-000_cam0_Bengal.jpg" for day in range(1, 6)]
    fill(folder, old, 100_000)
    settings = cat_settings(tmp_path, f"camera.source={IMAGES / 'cat.bmp'}", "snapshots.max_mb=0.25")
    snapshots = SnapshotPublisher(settings.device.snapshots)
    Pipeline(settings, [snapshots]).run()

    names = snapshots_in(folder)
    assert names[-1] == last_name(snapshots)
    kept = names[:-1]
    assert kept and kept == old[-len(kept):]  # the newest of the old ones stayed
    limit = 0.25 * 1024 * 1024
    total = sum((folder / name).stat().st_size for name in names)
    assert total <= limit < total + 100_000  # and no more was deleted than needed


def test_a_nearly_full_disk_pauses_snapshots_with_one_warning_and_counts(tmp_path, caplog):
    """Appearances at frames 1, 3, 5, 7, 9; space comes back at frame 5 (long cooldown: one snapshot after)."""
    caplog.set_level(logging.INFO, logger="app.outputs.snapshots")
    settings = cat_settings(tmp_path, f"camera.source={alternating_folder(tmp_path, cats=5)}",
                            "snapshots.min_free_mb=1000000000", "snapshots.cooldown_s=3600")
    config = settings.device.snapshots
    space_back = Collector()
    pipeline = Pipeline(settings, [space_back, SnapshotPublisher(config)])

    def free_space() -> None:  # once the writer has seen the first two appearances (it writes in its own thread)
        wait_for(lambda: pipeline.stats.drops["snapshot_disk_full"] >= 2, "the first two snapshots not taken")
        config.min_free_mb = 0

    space_back.at[5] = free_space
    stats = pipeline.run()

    assert stats.drops["snapshot_disk_full"] == 2
    assert len(snapshots_in(tmp_path / "snaps")) == 1
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "app.outputs.snapshots"]
    warnings = [message for level, message in messages if level == logging.WARNING]
    assert len(warnings) == 1 and "paused" in warnings[0]
    assert len([message for level, message in messages if "resumed" in message]) == 1


def test_a_failed_write_is_counted_and_the_run_goes_on(tmp_path, cat_clip, caplog):
    settings = cat_settings(tmp_path, f"camera.source={cat_clip}", "snapshots.cooldown_s=0")
    folder_gone = Collector(at={1: lambda: shutil.rmtree(tmp_path / "snaps")})  # e.g. a USB stick pulled out
    stats = Pipeline(settings, [folder_gone, SnapshotPublisher(settings.device.snapshots)]).run()

    assert stats.processed == 90
    assert stats.drops["snapshot_error"] >= 1
    assert not (tmp_path / "snaps").exists()  # not recreated on the SD card behind the missing mount
    assert any(r.levelno == logging.WARNING and "not written" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("override", ["publish.snapshots.min_score=0.99",
                                      "publish.snapshots.labels=[beagle]"])
def test_only_chosen_labels_scored_high_enough_take_snapshots(tmp_path, override):
    settings = cat_settings(tmp_path, f"camera.source={IMAGES / 'cat.bmp'}", override)
    events = Collector()
    snapshots = SnapshotPublisher(settings.device.snapshots)
    Pipeline(settings, [events, snapshots]).run()
    assert events.appeared()
    assert snapshots_in(tmp_path / "snaps") == [] and snapshots.last_path is None


# --- the wall clock: names follow it, retention follows the order of writing --------------------------------------

CAT = Detection("Bengal", 0, 0.9, (0.0, 0.0, 16.0, 16.0))
#: 2025-10-26 00:00 UTC: 02:00 summer time in Berlin, an hour before the clocks there go back to 02:00
BERLIN_DST_END = 1761436800.0


def snapshots_at(tmp_path: Path, clock: list[tuple[float, float]], *overrides: str) -> Stats:
    """A cat appearing at each (wall clock, monotonic clock) of `clock` in turn, each a snapshot (no cooldown),
    published and written one after the other; the run's stats."""
    settings = cat_settings(tmp_path, "snapshots.cooldown_s=0", *overrides)
    snapshots = SnapshotPublisher(settings.device.snapshots)
    stats = Stats()
    snapshots.start(PublishContext(settings, stats, settings.pipeline.publish, lossless=True))
    image = np.zeros((48, 64, 3), np.uint8)
    for seq, (ts, t_capture) in enumerate(clock, 1):
        frame = Frame(image, seq, "cam0", ts=ts, t_capture=t_capture, detections=[CAT])
        snapshots.publish(Output(frame, {}, [Event("appeared", "Bengal", 1, 0)], {}, OverlayParams(), 10.0))
    snapshots.close(time.monotonic() + 30)
    return stats


def expected_names(clock: list[tuple[float, float]]) -> list[str]:
    return [snapshot_name(ts, "cam0", "Bengal") for ts, _ in clock]


def clock_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "wall clock" in r.getMessage()]


def test_after_the_wall_clock_steps_back_a_day_every_new_snapshot_is_kept(tmp_path, caplog):
    """A snapshot a minute, the wall clock set back a day after the sixth, the folder holding four: the four kept
    are the last four written (their names are older than the first ones'), and the step is logged once."""
    now = time.time()
    clock = [(now + 60 * i - (86400 if i >= 6 else 0), 1000.0 + 60 * i) for i in range(12)]
    stats = snapshots_at(tmp_path, clock, "snapshots.max_files=4")

    assert snapshots_in(tmp_path / "snaps") == sorted(expected_names(clock)[-4:])
    assert not stats.drops
    warnings = clock_warnings(caplog)
    assert len(warnings) == 1 and "went back 86400 s" in warnings[0], warnings


@pytest.fixture
def berlin(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_repeated_hour_at_the_end_of_summer_time_keeps_every_new_snapshot(tmp_path, caplog, berlin):
    """In Berlin 02:00-03:00 happens twice on 2025-10-26: a snapshot every 10 minutes through both, the folder
    holding four. Names in UTC never repeat nor go back, so the four kept are the last four written."""
    assert time.localtime(BERLIN_DST_END).tm_hour == time.localtime(BERLIN_DST_END + 3600).tm_hour == 2
    clock = [(BERLIN_DST_END + 600 * i, 1000.0 + 600 * i) for i in range(13)]
    snapshots_at(tmp_path, clock, "snapshots.max_files=4")

    names = expected_names(clock)
    assert names[0].startswith("20251026-000000-000Z_") and names == sorted(names)
    assert snapshots_in(tmp_path / "snaps") == names[-4:]
    assert clock_warnings(caplog) == []  # the wall clock itself never went back


def test_snapshots_that_would_share_a_name_are_all_kept(tmp_path):
    """Three appearances at one wall-clock millisecond (a clock that stepped back onto an earlier snapshot's)."""
    now = time.time()
    snapshots_at(tmp_path, [(now, 1000.0), (now, 1000.5), (now, 1000.9)])

    first = snapshot_name(now, "cam0", "Bengal")
    again = [first.replace("Z_", f"Z-{n}_") for n in (1, 2)]
    assert snapshots_in(tmp_path / "snaps") == sorted([first, *again])


def test_files_found_at_start_are_older_than_this_runs_whatever_their_names(tmp_path):
    """A folder from a run whose clock was years ahead: those go first, not the new snapshots named earlier."""
    ahead = [f"2030010{day}-120000-000Z_cam0_Bengal.jpg" for day in range(1, 4)]
    fill(tmp_path / "snaps", ahead, 1000)
    now = time.time()
    clock = [(now, 1000.0), (now + 60, 1060.0)]
    snapshots_at(tmp_path, clock, "snapshots.max_files=3")

    assert snapshots_in(tmp_path / "snaps") == sorted([*expected_names(clock), ahead[-1]])


def test_the_snapshot_just_written_stays_even_when_it_alone_is_over_max_mb(tmp_path):
    now = time.time()
    clock = [(now, 1000.0), (now + 60, 1060.0)]
    snapshots_at(tmp_path, clock, "snapshots.max_mb=0.000001")

    assert snapshots_in(tmp_path / "snaps") == expected_names(clock)[-1:]
