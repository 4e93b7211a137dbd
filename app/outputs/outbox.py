"""Outbox: a publisher's bounded queue and the one worker thread that empties it, so no output blocks the lanes.

The output lane only puts into outboxes; every write, fsync, send or POST happens in the outbox's worker. A worker
that cannot keep up (a pipe nobody reads, a slow disk) costs its own output the oldest items, each drop counted,
and never the others. For finite sources (files, images) an outbox may instead be lossless: the output lane then
waits, as the hand-offs do, so every frame's result is written. A worker that fails hands its error to the next
`put`, where the output lane raises it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from app.handoff import Handoff

T = TypeVar("T")


class Outbox(Generic[T]):
    """`work` gets an iterator of the items put, in order, and returns when it ends (the outbox closed)."""

    def __init__(self, name: str, capacity: int, lossless: bool, on_drop: Callable[[], None],
                 work: Callable[[Iterator[T]], None]) -> None:
        self._queue: Handoff[T] = Handoff(capacity, lossless, on_drop)
        self._work = work
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"outbox-{name}", daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        """Queue `item` (dropping the oldest when full); raise what the worker failed with, if it did."""
        if self.failure is not None:
            raise self.failure
        self._queue.put(item)

    def close(self, deadline: float) -> int:
        """Let the worker finish what is queued until `deadline` (monotonic); then forget what is still waiting and
        return how many items that was (0: everything went out, or is going out now)."""
        self._queue.close()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return self._queue.clear() if self._thread.is_alive() else 0

    def _items(self) -> Iterator[T]:
        while (item := self._queue.get()) is not None:
            yield item

    def _run(self) -> None:
        try:
            self._work(self._items())
        except BaseException as exc:  # handed to the output lane at the next put
            self.failure = exc
            self._queue.close()
