"""Snapshots: a JPEG on disk when a chosen label appears, for looking back at what the camera saw.

Owns which `appeared` events deserve a picture (the label is chosen, the frame holds it at `min_score`, the
label is out of its cooldown), the file's name (`YYYYmmdd-HHMMSS-mmmZ_<camera>_<label>.jpg`, in UTC, so a change
of daylight saving time repeats no name; `-N` after the `Z` when that name is taken, so no snapshot overwrites
another), writing it atomically (a reader never sees half a JPEG, a power cut never leaves one), and keeping the
folder within `max_files`, `max_mb` and `min_free_mb`, so a camera left alone for a year never fills its SD card.

Retention deletes the oldest by the time they were written, not by their names, which follow a wall clock that
may step back (NTP correcting a Pi that booted without a clock): the files found in the folder go first, in the
order of their names, then this run's in the order it wrote them (kept in memory), and the file just written is
never deleted. A step back of the wall clock between two snapshots is logged once, saying how far. Only files
matching this camera's naming pattern are ever deleted (older versions' local-time names included): the folder
may hold other things. A nearly full or failing disk pauses snapshots by the rule every file output follows
(`DiskGate`): counted, one warning, never fatal.

The output lane only decides; encoding, writing, fsync and pruning happen in the snapshots' Outbox worker, so a
slow card or a stuck USB stick slows no other output. A folder whose parent is not there (a USB stick not mounted
yet) is not created on the card underneath: it is waited for, each snapshot meanwhile dropped and counted as
`snapshot_no_folder`, with one warning.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from app.config import SnapshotsConfig
from app.frame import Frame
from app.names import safe_name
from app.outputs.outbox import Outbox
from app.outputs.base import Output, PublishContext, Publisher
from app.outputs.disk import MB, DiskGate

log = logging.getLogger(__name__)

#: snapshots waiting to be written while the disk is slow
OUTBOX_SIZE = 8
#: how far the wall clock must step back, against the monotonic clock, between two snapshots to be logged
CLOCK_STEP_S = 1.0


def snapshot_name(ts: float, camera: str, label: str, taken: int = 0) -> str:
    """`YYYYmmdd-HHMMSS-mmmZ_<camera>_<label>.jpg` in UTC, camera and label spelled as in MQTT topics; with
    `-<taken>` after the `Z` for the `taken`-th other snapshot that would have the same name."""
    stamp = datetime.fromtimestamp(ts, timezone.utc)
    again = f"-{taken}" if taken else ""
    return (f"{stamp:%Y%m%d-%H%M%S}-{stamp.microsecond // 1000:03d}Z{again}_{safe_name(camera)}_"
            f"{safe_name(label)}.jpg")


def name_pattern(camera: str) -> re.Pattern[str]:
    """What `snapshot_name` makes for this camera, and what older versions made (local time, no `Z`)."""
    return re.compile(rf"\d{{8}}-\d{{6}}-\d{{3}}(Z(-\d+)?)?_{re.escape(safe_name(camera))}_[A-Za-z0-9_-]+\.jpg")


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
    section = "snapshots"
    def __init__(self, config: SnapshotsConfig) -> None:
        self.config = config
        #: the newest snapshot this run wrote, for other outputs (None before the first)
        self.last_path: Path | None = None
        self._ctx: PublishContext  # the rest is set by start()
        self._dir: Path
        self._labels: set[str] | None
        self._pattern: re.Pattern[str]
        self._last_taken: dict[str, float] = {}  # label -> t_capture (monotonic) of its newest snapshot
        self._gate: DiskGate
        #: the names of this run's snapshots still in the folder, in the order they were written
        self._written: dict[str, None] = {}
        #: wall clock less monotonic clock at the previous snapshot: a drop is the wall clock stepping back
        self._clock_offset: float | None = None
        self._folder_ready = self._folder_seen = False
        self._folder_problem = ""
        #: (the frame, the label, when the label's previous snapshot was taken): put back if this one fails
        self._outbox: Outbox[tuple[Output, str, float | None]] | None = None

    def start(self, ctx: PublishContext) -> None:
        self._ctx = ctx
        self._gate = DiskGate(ctx.camera, "snapshots", "snapshot", ctx.stats, log)
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
        """Write the snapshot; False when it was not written (no room, a failed write, no privacy mask yet)."""
        self._notice_clock_step(out.frame)
        path = self._unused_path(out.frame.ts, label)
        try:
            if not self._gate.has_room(self._dir, self.config.min_free_mb):
                return False
            jpeg = out.sendable_jpeg(self._ctx.stats, quality=self.config.quality, annotated=self.config.annotated)
            if jpeg is None:
                return False
            write_atomically(path, jpeg)
        except OSError as exc:
            self._failed(f"snapshot {path.name} not written", exc)
            return False
        log.debug("snapshot %s", path)
        self.last_path = path
        self._written[path.name] = None
        try:
            self._prune(path.name)
        except OSError as exc:
            self._failed(f"old snapshots in {self._dir} not deleted", exc)
        else:
            self._gate.succeeded()
        return True

    def _notice_clock_step(self, frame: Frame) -> None:
        """Log (once per step) a wall clock that went back since the previous snapshot, against the monotonic."""
        offset = frame.ts - frame.t_capture
        if self._clock_offset is not None and offset < self._clock_offset - CLOCK_STEP_S:
            log.warning("snapshots: the wall clock went back %.0f s since the previous snapshot; their names follow "
                        "it, the oldest written are still deleted first", self._clock_offset - offset)
        self._clock_offset = offset

    def _unused_path(self, ts: float, label: str) -> Path:
        """The snapshot's path, under a name no other file in the folder has."""
        taken = 0
        while (path := self._dir / snapshot_name(ts, self._ctx.camera, label, taken)).exists():
            taken += 1
        return path

    def _prune(self, newest: str) -> None:
        """Delete the oldest snapshots beyond `max_files` or `max_mb`, oldest by time of writing: those found in the
        folder by name, then this run's as written. `newest`, just written, always stays."""
        sizes = {entry.name: entry.stat().st_size for entry in os.scandir(self._dir)
                 if self._pattern.fullmatch(entry.name) and entry.is_file()}
        self._written = {name: None for name in self._written if name in sizes}  # forget what others deleted
        oldest_first = sorted(name for name in sizes if name not in self._written) + list(self._written)
        excess_files = len(sizes) - self.config.max_files
        excess_bytes = sum(sizes.values()) - self.config.max_mb * MB
        for name in oldest_first:
            if excess_files <= 0 and excess_bytes <= 0:
                break
            if name == newest:
                continue
            (self._dir / name).unlink(missing_ok=True)
            self._written.pop(name, None)
            excess_files -= 1
            excess_bytes -= sizes[name]

    def _remove_stale_temp_files(self) -> None:
        """Temporary files a power cut left mid-write: never complete, never renamed."""
        for entry in os.scandir(self._dir):
            name = entry.name
            if name.startswith(".") and name.endswith(".tmp") and self._pattern.fullmatch(name[1:-4]):
                Path(entry.path).unlink(missing_ok=True)

    def _failed(self, what: str, exc: OSError) -> None:
        self._folder_ready = self._dir.is_dir()  # a disk unplugged: wait for it again
        self._gate.failed(what, exc)
