"""A camera made of a file, for the bench's `--live-fps`: frame k is exposed at start + k / fps, whoever reads.

A reader that falls behind gets the newest frame exposed, as from a camera, not the next one in the file: the
frames it missed are read and thrown away (a decoder cannot skip), and each frame carries its exposure time, so
exposure-to-result is measured from the moment the "camera" took the picture, for the loop and the pipeline alike.
With clips on, the camera's ring is the file's to fill (an H.264 file's packets, every one, read or skipped), as it
would be without the pacing.
"""

from __future__ import annotations

import math
import time

from app.frame import EXPOSURE
from app.sources.base import Captured, Source


class PacedCamera(Source):
    def __init__(self, source: Source, fps: float) -> None:
        self.source = source
        self.fps = fps
        self.live = True
        self.reconnects = False
        self.description = f"{source.description} as a camera at {fps:g} fps"
        self._start: float | None = None
        self._next = 0  # the index of the next frame not yet delivered
        #: frames exposed while the reader was busy, never delivered (a camera's stale frames)
        self.skipped = 0

    def open(self) -> None:
        self.source.ring = self.ring
        self.source.open()
        self.fills_ring = self.source.fills_ring

    def read(self) -> Captured:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        newest = math.floor((now - self._start) * self.fps)  # the newest frame exposed by now
        if newest < self._next:  # the reader is early: wait for the next exposure
            time.sleep(self._start + self._next / self.fps - now)
            newest = self._next
        for _ in range(newest - self._next):
            self.source.read()
            self.skipped += 1
        captured = self.source.read()
        self._next = newest + 1
        return captured._replace(t_capture=self._start + newest / self.fps, stamp=EXPOSURE)

    def close(self) -> None:
        self.source.close()
