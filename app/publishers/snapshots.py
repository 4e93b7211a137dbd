"""Snapshots: a JPEG on disk when a chosen label appears, for looking back at what the camera saw.

Owns which `appeared` events deserve a picture (the label is chosen, the frame holds it at `min_score`, the
label is out of its cooldown), the file's name (`YYYYmmdd-HHMMSS-mmm_<camera>_<label>.jpg`: sorted by name is
sorted by time), writing it atomically (a reader never sees half a JPEG, a power cut never leaves one), and
keeping the folder within `max_files`, `max_mb` and `min_free_mb`, so a camera left alone for a year never fills
its SD card. Only files matching this camera's naming pattern are ever deleted: the folder may hold other things.
A failed write is logged and counted, never fatal: a full or unplugged disk must not stop the camera.

The output lane only decides; encoding, writing, fsync and pruning happen in the snapshots' Outbox worker, so a
slow card or a stuck USB stick slows no other output. A folder whose parent is not there (a USB stick not mounted
yet) is not created on the card underneath: it is waited for, each snapshot meanwhile dropped and counted as
`snapshot_no_folder`, with one warning.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from app.config import SnapshotsConfig
from app.frame import Frame
from app.names import safe_name
from app.outbox import Outbox
from app.publishers.base import Output, PublishContext, Publisher

log = logging.getLogger(__name__)

MB = 1024 * 1024
#: snapshots waiting to be written while the disk is slow
OUTBOX_SIZE = 8


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
        self._folder_ready = self._folder_seen = False
        self._folder_problem = ""
        #: (the frame, the label, when the label's previous snapshot was taken): put back if this one fails
        self._outbox: Outbox[tuple[Output, str, float | None]] | None = None

    def start(self, ctx: PublishContext) -> None:
        self._ctx = ctx
        chosen = ctx.publish.snapshots.labels
        chosen = ctx.publish.labels if chosen is None else chosen
        self._labels = None if chosen is None else set(chosen)
        self._pattern = name_pattern(ctx.camera)
        self._dir = ctx.settings.resolve_path(self.config.dir)
        self._prepare_folder()
        self._outbox = Outbox("snapshots", OUTBOX_SIZE, ctx.lossless, lambda: ctx.stats.drop("snapshots_outbox"),
                              self._write_all)

    def publish(self, out: Output) -> None:
        assert self._outbox is not None, "start() first"
        for label in self._due(out):
            self._outbox.put((out, label, self._last_taken.get(label)))
            self._last_taken[label] = out.frame.t_capture  # the cooldown runs from here, unless not written

    def close(self, deadline: float) -> None:
        if self._outbox is not None:
            self._outbox.close(deadline)

    def _prepare_folder(self) -> bool:
        """The folder, made at first use if its parent is there; False (warned once) while it cannot be. A folder
        that was there and went (a USB stick pulled out) is waited for, never made again on the card beneath."""
        if self._folder_ready:
            return True
        try:
            if self._folder_seen and not self._dir.is_dir():
                raise FileNotFoundError(f"{self._dir} went away (a disk unplugged?)")
            if not self._dir.parent.is_dir():
                raise FileNotFoundError(f"{self._dir.parent} is not there (a disk not mounted yet?)")
            self._dir.mkdir(exist_ok=True)
            self._remove_stale_temp_files()
        except OSError as exc:
            problem = exc.strerror or str(exc)
            if problem != self._folder_problem:
                log.warning("snapshots: cannot use %s (%s); snapshots are dropped until it can be", self._dir,
                            problem)
            self._folder_problem = problem
            return False
        if self._folder_problem:
            log.info("snapshots: %s is there now", self._dir)
        self._folder_ready, self._folder_seen, self._folder_problem = True, True, ""
        return True

    def _write_all(self, items: Iterator[tuple[Output, str, float | None]]) -> None:
        for out, label, previous in items:
            if self._prepare_folder():
                written = self._take(out, label)
            else:
                written = False
                self._ctx.stats.drop("snapshot_no_folder")
            if not written and self._last_taken.get(label) == out.frame.t_capture:  # no cooldown from it
                if previous is None:
                    del self._last_taken[label]
                else:
                    self._last_taken[label] = previous

    def _due(self, out: Output) -> list[str]:
        """Labels that appeared in this frame, are chosen, are detected well enough and are out of cooldown."""
        min_score = self._ctx.publish.snapshots.min_score
        return [e.label for e in out.events
                if e.kind == "appeared"
                and (self._labels is None or e.label in self._labels)
                and has_detection(out.frame, e.label, min_score)
                and out.frame.t_capture - self._last_taken.get(e.label, float("-inf")) >= self.config.cooldown_s]

    def _take(self, out: Output, label: str) -> bool:
        """Write the snapshot; False when it was not written (no room, a failed write)."""
        path = self._dir / snapshot_name(out.frame.ts, self._ctx.camera, label)
        try:
            if not self._disk_has_room():
                return False
            write_atomically(path, out.jpeg(quality=self.config.quality, annotated=self.config.annotated))
        except OSError as exc:
            self._failed(f"snapshot {path.name} not written", exc)
            return False
        log.debug("snapshot %s", path)
        self.last_path = path
        try:
            self._prune()
        except OSError as exc:
            self._failed("old snapshots not deleted", exc)
        return True

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
        self._folder_ready = self._dir.is_dir()  # a disk unplugged: wait for it again
        log.warning("%s: %s", what, exc.strerror or exc)
        self._ctx.stats.drop("snapshot_error")
