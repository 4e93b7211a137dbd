"""Snapshots: a JPEG on disk when a chosen label appears, for looking back at what the camera saw.

Owns which `appeared` events deserve a picture (the label is chosen, the frame holds it at `min_score`, the
label is out of its cooldown), the file's name (`YYYYmmdd-HHMMSS-mmm_<camera>_<label>.jpg`: sorted by name is
sorted by time), writing it atomically (a reader never sees half a JPEG, a power cut never leaves one), and
keeping the folder within `max_files`, `max_mb` and `min_free_mb`, so a camera left alone for a year never fills
its SD card. Only files matching this camera's naming pattern are ever deleted: the folder may hold other things.
A failed write is logged and counted, never fatal: a full or unplugged disk must not stop the camera.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from datetime import datetime
from pathlib import Path

from app.config import SnapshotsConfig
from app.errors import ConfigError
from app.frame import Frame
from app.names import safe_name
from app.publishers.base import Output, PublishContext, Publisher

log = logging.getLogger(__name__)

MB = 1024 * 1024


def snapshot_name(ts: float, camera: str, label: str) -> str:
    """`YYYYmmdd-HHMMSS-mmm_<camera>_<label>.jpg` in local time, camera and label spelled as in MQTT topics."""
    stamp = datetime.fromtimestamp(ts)
    return f"{stamp:%Y%m%d-%H%M%S}-{stamp.microsecond // 1000:03d}_{safe_name(camera)}_{safe_name(label)}.jpg"


def name_pattern(camera: str) -> re.Pattern[str]:
    """What `snapshot_name` makes for this camera, and nothing else."""
    return re.compile(rf"\d{{8}}-\d{{6}}-\d{{3}}_{re.escape(safe_name(camera))}_[A-Za-z0-9_-]+\.jpg")


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, fsync, then rename over `path`."""
    temp = temp_path(path)
    try:
        with open(temp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def has_detection(frame: Frame, label: str, min_score: float) -> bool:
    return any(d.label == label and d.score >= min_score for d in frame.detections)


class SnapshotPublisher(Publisher):
    def __init__(self, config: SnapshotsConfig) -> None:
        self.config = config
        #: the newest snapshot this run wrote, for other outputs (None before the first)
        self.last_path: Path | None = None
        self._ctx: PublishContext  # the rest is set by start()
        self._dir: Path
        self._labels: set[str] | None
        self._pattern: re.Pattern[str]
        self._last_taken: dict[str, float] = {}  # label -> t_capture (monotonic) of its newest snapshot
        self._paused = False

    def start(self, ctx: PublishContext) -> None:
        self._ctx = ctx
        chosen = ctx.publish.snapshots.labels
        chosen = ctx.publish.labels if chosen is None else chosen
        self._labels = None if chosen is None else set(chosen)
        self._pattern = name_pattern(ctx.camera)
        self._dir = ctx.settings.resolve_path(self.config.dir)
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"snapshots.dir: cannot create {self._dir} ({exc.strerror})") from None
        self._remove_stale_temp_files()

    def publish(self, out: Output) -> None:
        for label in self._due(out):
            self._take(out, label)

    def _due(self, out: Output) -> list[str]:
        """Labels that appeared in this frame, are chosen, are detected well enough and are out of cooldown."""
        min_score = self._ctx.publish.snapshots.min_score
        return [e.label for e in out.events
                if e.kind == "appeared"
                and (self._labels is None or e.label in self._labels)
                and has_detection(out.frame, e.label, min_score)
                and out.frame.t_capture - self._last_taken.get(e.label, float("-inf")) >= self.config.cooldown_s]

    def _take(self, out: Output, label: str) -> None:
        path = self._dir / snapshot_name(out.frame.ts, self._ctx.camera, label)
        try:
            if not self._disk_has_room():
                return
            write_atomically(path, out.jpeg(quality=self.config.quality, annotated=self.config.annotated))
        except OSError as exc:
            self._failed(f"snapshot {path.name} not written", exc)
            return
        log.debug("snapshot %s", path)
        self._last_taken[label] = out.frame.t_capture
        self.last_path = path
        try:
            self._prune()
        except OSError as exc:
            self._failed("old snapshots not deleted", exc)

    def _disk_has_room(self) -> bool:
        """False (counted, warned once per pause) while free space is below `min_free_mb`."""
        free_mb = shutil.disk_usage(self._dir).free / MB
        full = free_mb < self.config.min_free_mb
        if full and not self._paused:
            log.warning("snapshots paused: %.0f MB free in %s, below snapshots.min_free_mb (%.0f MB)",
                        free_mb, self._dir, self.config.min_free_mb)
        elif self._paused and not full:
            log.info("snapshots resumed: %.0f MB free in %s", free_mb, self._dir)
        self._paused = full
        if full:
            self._ctx.stats.drop("snapshot_disk_full")
        return not full

    def _prune(self) -> None:
        """Delete the oldest snapshots beyond `max_files` or `max_mb`; the newest always stays."""
        files = sorted((entry.name, entry.stat().st_size) for entry in os.scandir(self._dir)
                       if self._pattern.fullmatch(entry.name) and entry.is_file())
        excess_files = len(files) - self.config.max_files
        excess_bytes = sum(size for _, size in files) - self.config.max_mb * MB
        for name, size in files[:-1]:
            if excess_files <= 0 and excess_bytes <= 0:
                break
            (self._dir / name).unlink(missing_ok=True)
            excess_files -= 1
            excess_bytes -= size

    def _remove_stale_temp_files(self) -> None:
        """Temporary files a power cut left mid-write: never complete, never renamed."""
        for entry in os.scandir(self._dir):
            name = entry.name
            if name.startswith(".") and name.endswith(".tmp") and self._pattern.fullmatch(name[1:-4]):
                Path(entry.path).unlink(missing_ok=True)

    def _failed(self, what: str, exc: OSError) -> None:
        log.warning("%s: %s", what, exc.strerror or exc)
        self._ctx.stats.drop("snapshot_error")
