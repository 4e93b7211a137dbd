"""Snapshots: real runs of the pet model write a JPEG when a cat appears — named by time and label, written
atomically, one per label per cooldown, pruned by count and size, paused on a nearly full disk, never fatal."""

from __future__ import annotations

import logging
import re
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

from app.config import Settings, load_settings
from app.events import Event
from app.pipeline import Pipeline
from app.publishers import build_publishers
from app.publishers.base import Output, Publisher
from app.publishers.snapshots import SnapshotPublisher
from app.sources.base import Captured, EndOfStream, Source
from conftest import IMAGES, MODELS, read_rgb
from test_known_answers import CAT_BREEDS

SNAPSHOT = re.compile(r"(\d{8}-\d{6}-\d{3})_cam0_([A-Za-z0-9_-]+)\.jpg")
BLANK = np.full((480, 640, 3), 128, np.uint8)  # the pet model finds nothing here


def cat_settings(tmp_path: Path, *overrides: str) -> Settings:
    """The pet model watching for cats (any breed), events after one frame, snapshots on into tmp_path/snaps."""
    pipeline_file = tmp_path / "cats.yaml"
    pipeline_file.write_text(
        "description: cats\nstages:\n  - preprocess: {}\n  - inference: {model: pet}\n  - postprocess: {}\n"
        f"publish: {{labels: [{', '.join(sorted(CAT_BREEDS))}], appear_frames: 1, clear_frames: 1, "
        "snapshots: {min_score: 0.3}}\n")
    return load_settings(str(pipeline_file), None, [
        f"stages.inference.model={MODELS / 'ssd_mobilenet_v1_fine_tuned_pet.tflite'}",
        f"stages.inference.labels={MODELS / 'pet_labels.txt'}",
        "snapshots.enabled=true", f"snapshots.dir={tmp_path / 'snaps'}", *overrides])


def alternating_folder(tmp_path: Path, cats: int) -> Path:
    """cat, blank, cat, blank, … cat: every cat is an appearance when clear_frames is 1."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2 * cats - 1):
        if i % 2:
            cv2.imwrite(str(folder / f"{i:02d}_blank.png"), BLANK)
        else:
            shutil.copy(IMAGES / "cat.bmp", folder / f"{i:02d}_cat.bmp")
    return folder


class Slideshow(Source):
    """Images shown in order, each after its own pause in seconds: a finite source with a known timeline."""

    description = "slideshow"
    live = False

    def __init__(self, shots: list[tuple[float, np.ndarray]]) -> None:
        self.shots = shots
        self.shown = 0

    def open(self) -> None:
        self.shown = 0

    def read(self) -> Captured:
        if self.shown == len(self.shots):
            raise EndOfStream(self.description)
        pause, image = self.shots[self.shown]
        self.shown += 1
        time.sleep(pause)
        return Captured(image)

    def close(self) -> None:
        pass


class Events(Publisher):
    """Records every event with its frame's result."""

    def __init__(self) -> None:
        self.seen: list[tuple[Event, dict]] = []

    def publish(self, out: Output) -> None:
        self.seen += [(event, out.result) for event in out.events]

    def appeared(self) -> list[str]:
        return [event.label for event, _ in self.seen if event.kind == "appeared"]


class OnFrame(Publisher):
    """Runs `action` when frame `seq` reaches the outputs, before the publishers listed after this one see it."""

    def __init__(self, seq: int, action: Callable[[], object]) -> None:
        self.seq = seq
        self.action = action

    def publish(self, out: Output) -> None:
        if out.frame.seq == self.seq:
            self.action()


def snapshots_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if SNAPSHOT.fullmatch(p.name))


def fill(folder: Path, names: list[str], size: int) -> None:
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"\xff\xd8" + bytes(size - 2))


def test_a_cat_appearing_writes_one_valid_jpeg_per_label_named_by_time(tmp_path, cat_clip):
    settings = cat_settings(tmp_path, f"camera.source={cat_clip}", "snapshots.cooldown_s=3600")
    publishers = build_publishers(settings)
    snapshots = next(p for p in publishers if isinstance(p, SnapshotPublisher))
    events = Events()
    started = time.time()
    stats = Pipeline(settings, [events, *publishers]).run()

    folder = tmp_path / "snaps"
    names = sorted(p.name for p in folder.iterdir())
    assert names == snapshots_in(folder), names  # nothing else: no temporary files left behind
    labels = [SNAPSHOT.fullmatch(name).group(2) for name in names]
    assert events.appeared() and set(events.appeared()) <= CAT_BREEDS
    assert sorted(labels) == sorted(set(events.appeared()))  # one per label, however often it appeared
    for name in names:
        stamp = datetime.strptime(SNAPSHOT.fullmatch(name).group(1), "%Y%m%d-%H%M%S-%f").timestamp()
        assert started - 1 <= stamp <= time.time()
        data = (folder / name).read_bytes()
        assert data[:2] == b"\xff\xd8"
        assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (720, 1280, 3)
    assert snapshots.last_path == folder / names[-1]
    assert stats.processed == 90 and not stats.drops


def test_a_folder_alternating_cat_and_no_cat_gives_one_snapshot_per_cooldown(tmp_path):
    settings = cat_settings(tmp_path, f"camera.source={alternating_folder(tmp_path, cats=3)}",
                            "snapshots.cooldown_s=3600")
    events = Events()
    Pipeline(settings, [events, SnapshotPublisher(settings.device.snapshots)]).run()
    assert len(events.appeared()) == 3
    assert len(snapshots_in(tmp_path / "snaps")) == 1


def test_each_appearance_outside_the_cooldown_gets_a_snapshot(tmp_path):
    """Cats at about 0, 0.3, 1.5 and 1.8 s with a 1 s cooldown: snapshots at 0 and 1.5 s only."""
    cat = read_rgb("cat.bmp")
    settings = cat_settings(tmp_path, "snapshots.cooldown_s=1")
    events = Events()
    snapshots = SnapshotPublisher(settings.device.snapshots)
    shots = [(0, cat), (0.15, BLANK), (0.15, cat), (0.15, BLANK), (1.05, cat), (0.15, BLANK), (0.15, cat)]
    Pipeline(settings, [events, snapshots], Slideshow(shots)).run()

    assert len(events.appeared()) == 4
    names = snapshots_in(tmp_path / "snaps")
    assert len(names) == 2, names
    first, second = (datetime.strptime(SNAPSHOT.fullmatch(n).group(1), "%Y%m%d-%H%M%S-%f") for n in names)
    assert (second - first).total_seconds() >= 1.0
    assert snapshots.last_path.name == names[-1]


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

    assert snapshots_in(folder) == [*old[-2:], snapshots.last_path.name]
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
    assert names[-1] == snapshots.last_path.name
    kept = names[:-1]
    assert kept and kept == old[-len(kept):]  # the newest of the old ones stayed
    limit = 0.25 * 1024 * 1024
    total = sum((folder / name).stat().st_size for name in names)
    assert total <= limit < total + 100_000  # and no more was deleted than needed


def test_a_nearly_full_disk_pauses_snapshots_with_one_warning_and_counts(tmp_path, caplog):
    """Appearances at frames 1, 3, 5, 7, 9; space comes back at frame 5 (long cooldown: one snapshot after)."""
    caplog.set_level(logging.INFO, logger="app.publishers.snapshots")
    settings = cat_settings(tmp_path, f"camera.source={alternating_folder(tmp_path, cats=5)}",
                            "snapshots.min_free_mb=1000000000", "snapshots.cooldown_s=3600")
    config = settings.device.snapshots
    space_back = OnFrame(5, lambda: setattr(config, "min_free_mb", 0))
    stats = Pipeline(settings, [space_back, SnapshotPublisher(config)]).run()

    assert stats.drops["snapshot_disk_full"] == 2
    assert len(snapshots_in(tmp_path / "snaps")) == 1
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "app.publishers.snapshots"]
    warnings = [message for level, message in messages if level == logging.WARNING]
    assert len(warnings) == 1 and "paused" in warnings[0]
    assert len([message for level, message in messages if "resumed" in message]) == 1


def test_a_failed_write_is_counted_and_the_run_goes_on(tmp_path, cat_clip, caplog):
    settings = cat_settings(tmp_path, f"camera.source={cat_clip}", "snapshots.cooldown_s=0")
    folder_gone = OnFrame(1, lambda: shutil.rmtree(tmp_path / "snaps"))  # e.g. a USB stick pulled out
    stats = Pipeline(settings, [folder_gone, SnapshotPublisher(settings.device.snapshots)]).run()

    assert stats.processed == 90
    assert stats.drops["snapshot_error"] >= 1
    assert not (tmp_path / "snaps").exists()  # not recreated on the SD card behind the missing mount
    assert any(r.levelno == logging.WARNING and "not written" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("override", ["publish.snapshots.min_score=0.99",
                                      "publish.snapshots.labels=[beagle]"])
def test_only_chosen_labels_scored_high_enough_take_snapshots(tmp_path, override):
    settings = cat_settings(tmp_path, f"camera.source={IMAGES / 'cat.bmp'}", override)
    events = Events()
    snapshots = SnapshotPublisher(settings.device.snapshots)
    Pipeline(settings, [events, snapshots]).run()
    assert events.appeared()
    assert snapshots_in(tmp_path / "snaps") == [] and snapshots.last_path is None
