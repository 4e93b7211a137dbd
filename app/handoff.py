"""The two fixed-size hand-offs between the lanes: a bounded buffer that either drops its oldest item (live
sources: the newest frame wins, and every drop is counted) or makes the producer wait (files and images, read
only as fast as they are processed, so nothing is lost). Memory and latency can never grow.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    def __init__(self, capacity: int, lossless: bool, on_drop: Callable[[], None],
                 on_put: Callable[[], None] | None = None) -> None:
        """`on_put`: called after every hand-over and at the close (a consumer serving several hand-offs waits on
        it)."""
        self._items: deque[T] = deque()
        self._capacity = capacity
        self._lossless = lossless
        self._on_drop = on_drop
        self._on_put = on_put
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: T) -> bool:
        """Hand over `item`; False once the hand-off is closed (the consumer is gone)."""
        with self._cond:
            while self._lossless and len(self._items) >= self._capacity and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            if len(self._items) >= self._capacity:
                self._items.popleft()
                self._on_drop()
            self._items.append(item)
            self._cond.notify_all()
        if self._on_put is not None:
            self._on_put()
        return True

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, block: bool = True) -> T | None:
        """The oldest item, waiting for one (unless not `block`); None when closed and empty (or, not blocking,
        empty)."""
        with self._cond:
            while block and not self._items and not self._closed:
                self._cond.wait()
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def clear(self) -> int:
        """Forget every item waiting; return how many there were."""
        with self._cond:
            count = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return count

    def close(self) -> None:
        """No more items: producers stop, the consumer drains what is left."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._on_put is not None:
            self._on_put()
