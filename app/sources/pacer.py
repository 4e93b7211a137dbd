"""`Pacer`: a frame rate on the monotonic clock, shared by every source that paces itself (the test pattern, a video
file read in real time), so each delivers at its rate and one that falls behind is not given a burst to catch up."""

from __future__ import annotations

import time


class Pacer:
    """Spaces calls to `wait` at least 1/fps apart; a caller that falls behind is not given a burst to catch up."""

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps
        self._due = 0.0

    def wait(self) -> float:
        """Return the monotonic time of this tick: when it was due, or now if the caller came late."""
        now = time.monotonic()
        if now < self._due:
            time.sleep(self._due - now)
            now = self._due
        self._due = now + self.interval
        return now
