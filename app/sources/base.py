"""The Source interface: what a capture thread needs from any kind of camera, stream, file or generator.

A Source owns opening, reading and (through `open` being callable again) reconnecting; the capture thread in
`app.pipeline` owns the loop, the backoff and the hand-off. Frames are RGB, H x W x 3, uint8.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np


class Captured(NamedTuple):
    """One read: the RGB image and, from cameras whose ISP can scale for free, the same frame at model size."""

    image: np.ndarray
    lores: np.ndarray | None = None


class EndOfStream(Exception):
    """A finite source (file, images) has no more frames and will not loop."""


class Source(ABC):
    """One kind of frame producer.

    `live` sources (cameras, network streams, paced files) keep running whether or not the pipeline keeps up, so
    the pipeline drops stale frames; non-live sources (files read as fast as possible, images) are read only as
    fast as the pipeline consumes them and lose nothing.
    """

    #: what a person would call it in log lines ("/dev/video0", "rtsp://cam/stream", "3 images in shots/")
    description: str = ""
    live: bool = True

    @abstractmethod
    def open(self) -> None:
        """Open (or reopen after a failure). Raise `app.errors.SourceError` with the fix when it cannot."""

    @abstractmethod
    def read(self) -> Captured:
        """Return the next frame. Raise EndOfStream when a finite source is done, OSError when the device or
        stream failed (the capture thread then closes, backs off and calls `open` again)."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""
