"""JSON lines: one line per processed frame, in the one result shape, to standard output or a file.

For scripts and robots that read a stream of results; a file is appended to, so restarts keep history. Lines are
written by the outbox's worker, never in the output lane: a reader that stops reading (a pipe nobody drains)
costs its own lines, counted as `jsonl_outbox` drops, and slows no other output.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TextIO

from app.errors import ConfigError
from app.outbox import Outbox
from app.publishers.base import Output, PublishContext, Publisher

#: lines held for a slow reader before the oldest is dropped
OUTBOX_SIZE = 100
#: how long `close()` lets the worker write what is still queued
CLOSE_TIMEOUT_S = 2.0


class JsonLines(Publisher):
    def __init__(self, path: str) -> None:
        self._path = None if path == "-" else Path(path)
        self._outbox: Outbox[str] | None = None

    def start(self, ctx: PublishContext) -> None:
        if self._path is not None:
            try:  # refused now, with the path, rather than in the worker
                with self._path.open("a", encoding="utf-8"):
                    pass
            except OSError as exc:
                raise ConfigError(f"jsonl.path: cannot open {self._path} for writing ({exc.strerror})") from None
        self._outbox = Outbox("jsonl", OUTBOX_SIZE, ctx.lossless, lambda: ctx.stats.drop("jsonl_outbox"),
                              self._write)

    def _open(self) -> AbstractContextManager[TextIO]:
        return nullcontext(sys.stdout) if self._path is None else self._path.open("a", buffering=1, encoding="utf-8")

    def _write(self, lines: Iterator[str]) -> None:
        with self._open() as out:
            for line in lines:
                out.write(line)
                out.flush()

    def publish(self, out: Output) -> None:
        assert self._outbox is not None, "start() first"
        self._outbox.put(json.dumps(out.result, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._outbox is not None:
            self._outbox.close(time.monotonic() + CLOSE_TIMEOUT_S)
            if self._outbox.failure is not None and not isinstance(self._outbox.failure, BrokenPipeError):
                raise self._outbox.failure
