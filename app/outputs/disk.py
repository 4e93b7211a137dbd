"""The rule every file output (snapshots, JSON lines) follows when its disk is nearly full or failing: pause that
output alone, count what it drops, say so once, and go on as soon as a write succeeds again.

`DiskGate` is one output's pause. A write is refused while its disk has less than `min_free_mb` free, and each
refusal, like each failed write, drops the item and counts it: `<prefix>_disk_full` when the disk had no room
(ENOSPC, a quota, a file size limit), `<prefix>_error` for anything else (an I/O error, a read-only or unplugged
disk). The log gets one warning when the output pauses (naming the file or folder and why) and one info when a
write succeeds again, however many items were dropped in between: never a traceback, never a line per item. The
camera and the other outputs never notice.
"""

from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path

from app.metrics import Stats

MB = 1024 * 1024
#: what a write gets from a disk without room for it: no space, over quota, over the file size limit
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class DiskGate:
    """One file output's pause: `output` names it in the log (and its `min_free_mb` key), after the camera's name;
    drops are counted as `<drop_prefix>_disk_full` / `<drop_prefix>_error`, logged on `log` (the output's own)."""

    def __init__(self, camera: str, output: str, drop_prefix: str, stats: Stats, log: logging.Logger) -> None:
        self._camera = camera
        self._output = output
        self._drop_prefix = drop_prefix
        self._stats = stats
        self._log = log
        self._paused = False
        self._dropped = 0

    def has_room(self, folder: Path, min_free_mb: float) -> bool:
        """True when `folder`'s disk has `min_free_mb` free; else the item is dropped (counted; paused). Raises the
        OSError of a folder that cannot be asked."""
        free_mb = shutil.disk_usage(folder).free / MB
        if free_mb >= min_free_mb:
            return True
        self._drop("disk_full", f"{free_mb:.0f} MB free in {folder}, below {self._output}.min_free_mb "
                                f"({min_free_mb:.0f} MB)")
        return False

    def failed(self, what: str, exc: OSError) -> None:
        """`what` (e.g. `cannot write PATH`) failed with `exc`: the item is dropped (counted by cause; paused)."""
        self._drop("disk_full" if exc.errno in NO_ROOM else "error", f"{what} ({exc.strerror or exc})")

    def succeeded(self) -> None:
        """A write went through: resume, with one info, if paused."""
        if self._paused:
            self._log.info("%s: %s resumed after %d dropped", self._camera, self._output, self._dropped)
        self._paused, self._dropped = False, 0

    def _drop(self, cause: str, why: str) -> None:
        reason = f"{self._drop_prefix}_{cause}"
        self._stats.drop(reason)
        self._dropped += 1
        if not self._paused:
            self._log.warning("%s: %s paused: %s; dropped (counted as %s) until a write succeeds again",
                              self._camera, self._output, why, reason)
        self._paused = True
