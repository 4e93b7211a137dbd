"""Clips as an output: each camera's event clips (app/clips) made in a worker of their own, within their budget.

Owns the clip folder of one camera (`clips.dir/<camera>/`), cleaned of what a crash left and pruned at start and
after each clip (app/clips/retention.py), and the worker that feeds its `Recorder` each frame's object events and
then the packets the camera's ring got since. The output lane hands it the ring before `start` (None when the
camera's source gives no encoded video: only video files do in this release). A full or failing disk pauses clips
by the rule every file output follows (`DiskGate`): the clip is removed whole, counted as `clip_disk_full` or
`clip_error`, one warning until a clip is written again; the run goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

from app.clips.recorder import Recorder
from app.clips.retention import ClipFolder
from app.clips.ring import PacketRing
from app.config.clips import ClipsConfig
from app.names import safe_name
from app.outputs.base import Output, PublishContext, Publisher
from app.outputs.disk import DiskGate
from app.outputs.outbox import Outbox
from app.scene.tracker import ObjectEvent

log = logging.getLogger(__name__)

#: frames' object events waiting while the disk is slow (they hold no image)
OUTBOX_SIZE = 1000
#: the folder is pruned after each clip, and at least this often (clips past keep_days while none is made)
PRUNE_EVERY_S = 3600.0


class ClipPublisher(Publisher):
    section = "clips"

    def __init__(self, config: ClipsConfig) -> None:
        self.config = config
        #: the camera's ring of encoded video, given by the output lane before `start`
        self.ring: PacketRing | None = None
        self._outbox: Outbox[tuple[list[ObjectEvent], float]] | None = None
        self._gate: DiskGate
        self._folder: ClipFolder
        self._recorder: Recorder
        self._pruned_at = 0.0

    def start(self, ctx: PublishContext) -> None:
        if self.ring is None:
            log.warning("%s: clips are on, but none is made: its source gives no encoded video to keep (only video "
                        "files do in this release), or clips were turned on by a reload (a restart applies that)",
                        ctx.camera)
            return
        folder = ctx.settings.resolve_path(self.config.dir) / safe_name(ctx.camera)
        self._gate = DiskGate(ctx.camera, "clips", "clip", ctx.stats, log)
        self._folder = ClipFolder(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            removed = self._folder.clean()
            if removed:
                log.info("%s: clips: removed %d files a crash left (%s)", ctx.camera, len(removed), removed[0])
            self._prune()
        except OSError as exc:
            self._gate.failed(f"cannot use {folder}", exc)
        self._recorder = Recorder(self.config, self.ring, folder, ctx.camera, self._written, self._failed)
        self._outbox = Outbox("clips", OUTBOX_SIZE, ctx.lossless, lambda: ctx.stats.drop("clips_outbox"),
                              self._work)

    def publish(self, out: Output) -> None:
        if self._outbox is not None:
            self._outbox.put((out.objects, out.frame.t_capture))

    def finish(self, objects: list[ObjectEvent]) -> None:
        if self._outbox is not None:
            self._outbox.put((objects, time.monotonic()))

    def reconfigure(self, ctx: PublishContext) -> bool:
        """Kept (its clip going on) when `clips:` did not change; else replaced, the open clip ending there."""
        return ctx.settings.device.clips == self.config

    def close(self, deadline: float) -> None:
        if self._outbox is not None:
            self._outbox.close(deadline)

    def _work(self, items: Iterator[tuple[list[ObjectEvent], float]]) -> None:
        for objects, now in items:
            self._recorder.take(objects, now)
            self._recorder.pump()
            if time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
                self._prune_now()
        self._recorder.close()

    def _written(self, video: Path) -> None:
        self._gate.succeeded()
        log.info("%s: clip %s", self._recorder.camera, video.name)
        self._prune_now()

    def _prune_now(self) -> None:
        """Prune (after a clip, or when PRUNE_EVERY_S passed); a failure is counted as a failed write is."""
        try:
            self._prune()
        except OSError as exc:
            self._gate.failed(f"old clips in {self._folder.folder} not deleted", exc)

    def _prune(self) -> None:
        self._pruned_at = time.monotonic()
        for name in self._folder.prune(self.config.keep_days, self.config.max_bytes, time.time()):
            log.debug("clip %s deleted (clips.keep_days, clips.max_bytes)", name)

    def _failed(self, what: str, exc: Exception) -> None:
        self._gate.failed(what, exc if isinstance(exc, OSError) else OSError(str(exc)))
