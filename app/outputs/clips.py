"""Clips as an output: each camera's event clips (app/clips) made in a worker of their own, within their budget.

Owns the clip folder of one camera (`clips.dir/<camera>/`), cleaned of what a crash left and pruned at start and
after each clip (app/clips/retention.py), and the worker that feeds its `Recorder` each frame's object events and
then the packets the camera's ring got since, and the camera's `ClipPlanner` (app/clips/planner.py), which the output
lane runs on each frame's object events (`plan`) before any publisher gets them: the events of objects in a clip
carry its URL, `http://BIND:PORT/clips/NAME.mp4` when the HTTP output listens on an address of its own (a path,
`/clips/NAME.mp4`, when it binds every address or a port chosen at start: no base for it is known). The output
lane hands it the ring before `start` (every source fills one when clips are on at the camera's start: H.264 and
H.265 as they are, other video encoded; None when clips were turned on by a reload). A full or failing disk pauses clips
by the rule every file output follows (`DiskGate`): the clip is removed whole, counted as `clip_disk_full` or
`clip_error`, one warning until a clip is written again; the run goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

from app.clips.planner import ClipPlanner
from app.clips.recorder import Recorder
from app.clips.retention import ClipFolder
from app.clips.ring import PacketRing
from app.config import HttpConfig, Settings
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
#: binds that name no one address: a URL needs the host the client reached, which the camera does not know
ANY_ADDRESS = ("0.0.0.0", "::", "")


def clip_folder(settings: Settings, camera: str) -> Path:
    """Where `camera`'s clips are: `clips.dir/<camera>/`."""
    return settings.resolve_path(settings.device.clips.dir) / safe_name(camera)


def url_base(http: HttpConfig) -> str:
    """`http://BIND:PORT` of the HTTP output, or "" (URLs from the server's root) when no address of it is known."""
    if not http.enabled or http.bind in ANY_ADDRESS or http.port == 0:
        return ""
    host = f"[{http.bind}]" if ":" in http.bind else http.bind
    return f"http://{host}:{http.port}"


class ClipPublisher(Publisher):
    section = "clips"

    def __init__(self, config: ClipsConfig) -> None:
        self.config = config
        #: the camera's ring of encoded video, given by the output lane before `start`
        self.ring: PacketRing | None = None
        #: (a frame's object events, its stamp, the planner's head then)
        self._outbox: Outbox[tuple[list[ObjectEvent], float, int | None]] | None = None
        self._planner: ClipPlanner | None = None
        self._gate: DiskGate
        self._folder: ClipFolder
        self._recorder: Recorder
        self._pruned_at = 0.0

    def start(self, ctx: PublishContext) -> None:
        if self.ring is None:
            log.warning("%s: clips are on, but none is made until the camera restarts: they were turned on by a "
                        "reload, and the camera's source keeps its video for clips only from its start", ctx.camera)
            return
        folder = clip_folder(ctx.settings, ctx.camera)
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
        self._planner = ClipPlanner(self.config, self.ring, folder, ctx.camera, url_base(ctx.settings.device.http))
        self._recorder = Recorder(self.config, self.ring, folder, ctx.camera, self._written, self._failed,
                                  planner=self._planner)
        self._outbox = Outbox("clips", OUTBOX_SIZE, ctx.lossless, lambda: ctx.stats.drop("clips_outbox"),
                              self._work)

    def plan(self, objects: list[ObjectEvent], now: float) -> list[ObjectEvent]:
        """A frame's object events (`now`: its stamp) with their clips' URLs (the output lane, before publishing)."""
        return objects if self._planner is None else self._planner.plan(objects, now)

    def publish(self, out: Output) -> None:
        if self._outbox is not None and self._planner is not None:
            self._outbox.put((out.objects, out.frame.t_capture, self._planner.head))

    def finish(self, objects: list[ObjectEvent]) -> None:
        if self._outbox is not None:
            self._outbox.put((objects, time.monotonic(), None))

    def reconfigure(self, ctx: PublishContext) -> bool:
        """Kept (its clip going on) when `clips:` did not change; else replaced, the open clip ending there."""
        return ctx.settings.device.clips == self.config

    def close(self, deadline: float) -> None:
        if self._outbox is not None:
            self._outbox.close(deadline)

    def _work(self, items: Iterator[tuple[list[ObjectEvent], float, int | None]]) -> None:
        for objects, now, head in items:
            self._recorder.take(objects, now, head)
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
