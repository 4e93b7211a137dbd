"""JSON lines: one line per processed frame, in the one result shape, to standard output or a file.

For scripts and robots that read a stream of results; a file is appended to, so restarts keep history. Lines are
written by the outbox's worker, never in the output lane: a reader that stops reading (a pipe nobody drains)
costs its own lines, counted as `jsonl_outbox` drops, and slows no other output. A file whose folder is not there
yet (a USB stick not mounted) is waited for by a live run, its lines meanwhile dropped the same way; a run on a
file source fails at once instead.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TextIO

from app.errors import ConfigError
from app.outbox import Outbox
from app.publishers.base import Output, PublishContext, Publisher

log = logging.getLogger(__name__)

#: lines held for a slow reader before the oldest is dropped
OUTBOX_SIZE = 100
#: how often a file whose folder is not there yet is tried again
OPEN_RETRY_S = 1.0


class JsonLines(Publisher):
    def __init__(self, path: str) -> None:
        self._path = None if path == "-" else Path(path)
        self._outbox: Outbox[str] | None = None
        self._closing = threading.Event()

    def start(self, ctx: PublishContext) -> None:
        path = self._path
        if path is not None and (path.parent.is_dir() or ctx.lossless):
            try:  # refused now, with the path, rather than in the worker
                with path.open("a", encoding="utf-8"):
                    pass
            except OSError as exc:
                raise ConfigError(f"jsonl.path: cannot open {path} for writing ({exc.strerror})") from None
        elif path is not None:
            log.warning("jsonl: %s is not there (a disk not mounted yet?); lines are dropped until it is",
                        path.parent)
        self._outbox = Outbox("jsonl", OUTBOX_SIZE, ctx.lossless, lambda: ctx.stats.drop("jsonl_outbox"),
                              self._write)

    def _open(self) -> AbstractContextManager[TextIO | None]:
        """Standard output, or the file once its folder is there (waiting for it, until close)."""
        if self._path is None:
            return nullcontext(sys.stdout)
        while not self._path.parent.is_dir() and not self._closing.wait(OPEN_RETRY_S):
            pass
        if not self._path.parent.is_dir():
            return nullcontext(None)
        log.info("jsonl: writing %s", self._path)
        return self._path.open("a", buffering=1, encoding="utf-8")

    def _write(self, lines: Iterator[str]) -> None:
        with self._open() as out:
            if out is None:  # closed before the folder came
                return
            for line in lines:
                out.write(line)
                out.flush()

    def publish(self, out: Output) -> None:
        assert self._outbox is not None, "start() first"
        if out.replay:  # that frame's line is written already
            return
        self._outbox.put(json.dumps(out.result, separators=(",", ":")) + "\n")

    def close(self, deadline: float) -> None:
        self._closing.set()
        if self._outbox is not None:
            self._outbox.close(deadline)
            if self._outbox.failure is not None and not isinstance(self._outbox.failure, BrokenPipeError):
                raise self._outbox.failure
