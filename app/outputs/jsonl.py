"""JSON lines: one line per processed frame, in the one result shape, to standard output or a file.

For scripts and robots that read a stream of results; a file is appended to, so restarts keep history. Lines are
written by the outbox's worker, never in the output lane: a reader that stops reading (a pipe nobody drains)
costs its own lines, counted as `jsonl_outbox` drops, and slows no other output. A file whose folder is not there
yet (a USB stick not mounted) is waited for by a live run, its lines meanwhile dropped the same way; a run on a
file source fails at once instead.

A file is a `LineFile`: whole lines only (a torn tail is cut on opening, a failed write cut back), rotated at
`jsonl.max_mb` keeping `jsonl.keep` old files. On a nearly full or failing disk it follows the snapshots' rule
(`DiskGate`): its lines are dropped, counted as `jsonl_disk_full` or `jsonl_error`, with one warning, and
written again once the disk takes them; the camera and the other outputs go on.
"""

from __future__ import annotations

import errno
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from app.config import JsonlConfig
from app.errors import ConfigError
from app.outputs.outbox import Outbox
from app.outputs.base import Output, PublishContext, Publisher
from app.outputs.disk import MB, DiskGate
from app.outputs.line_file import LineFile

log = logging.getLogger(__name__)

#: lines held for a slow reader before the oldest is dropped
OUTBOX_SIZE = 100
#: how often a file whose folder is not there yet is tried again
OPEN_RETRY_S = 1.0
#: errors opening the file that say `jsonl.path` is wrong (exit 2); other errors are the disk's, waited for
WRONG_PATH = frozenset({errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP,
                        errno.ENOENT})


class JsonLines(Publisher):
    section = "jsonl"
    def __init__(self, config: JsonlConfig) -> None:
        self.config = config
        self._file = None if config.path == "-" else LineFile(Path(config.path), round(config.max_mb * MB),
                                                              config.keep)
        self._gate: DiskGate  # set by start()
        self._outbox: Outbox[str] | None = None
        self._closing = threading.Event()

    def start(self, ctx: PublishContext) -> None:
        self._gate = DiskGate(ctx.camera, "jsonl", "jsonl", ctx.stats, log)
        file = self._file
        if file is not None and (file.path.parent.is_dir() or ctx.lossless):
            try:  # refused now, with the path, rather than in the worker; a torn tail is cut now
                file.open()
            except OSError as exc:  # the disk's own trouble (no room, I/O) the worker meets: paused, counted
                if exc.errno in WRONG_PATH:
                    raise ConfigError(f"jsonl.path: cannot open {file.path} for writing ({exc.strerror})") from None
        elif file is not None:
            log.warning("jsonl: %s is not there (a disk not mounted yet?); lines are dropped until it is",
                        file.path.parent)
        work = self._write_stdout if file is None else self._write_file
        self._outbox = Outbox("jsonl", OUTBOX_SIZE, ctx.lossless, lambda: ctx.stats.drop("jsonl_outbox"), work)

    def _write_stdout(self, lines: Iterator[str]) -> None:
        for line in lines:
            sys.stdout.write(line)
            sys.stdout.flush()

    def _write_file(self, lines: Iterator[str]) -> None:
        """Wait for the file's folder (until close), then append each line, pausing while the disk refuses."""
        file = self._file
        assert file is not None
        try:
            while not file.path.parent.is_dir() and not self._closing.wait(OPEN_RETRY_S):
                pass
            if not file.path.parent.is_dir():  # closed before the folder came (back)
                return
            log.info("jsonl: writing %s", file.path)
            for line in lines:
                self._append(file, line)
        finally:
            file.close()

    def _append(self, file: LineFile, line: str) -> None:
        try:
            if self._gate.has_room(file.path.parent, self.config.min_free_mb):
                file.append(line.encode())
                self._gate.succeeded()
        except OSError as exc:
            self._gate.failed(f"cannot write {file.path}", exc)

    def publish(self, out: Output) -> None:
        assert self._outbox is not None, "start() first"
        self._outbox.put(json.dumps(out.result, separators=(",", ":")) + "\n")

    def close(self, deadline: float) -> None:
        self._closing.set()
        if self._outbox is not None:
            self._outbox.close(deadline)
            if self._outbox.failure is not None and not isinstance(self._outbox.failure, BrokenPipeError):
                raise self._outbox.failure
