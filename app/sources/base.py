"""The Source interface: what a capture thread needs from any kind of camera, stream, file or generator.

A Source owns opening and reading; a source that `reconnects` (cameras, streams) is wrapped in
`app.sources.reconnect.Reconnecting`, which reopens it with backoff; the capture thread in `app.pipeline` owns only
the loop and the hand-off. Frames are H x W x 3, uint8, in the channel order the source has them (`Captured.order`:
BGR from everything OpenCV reads), so no source spends a full-frame conversion that only the model-size image needs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from app.clips.ring import PacketRing
from app.frame import ARRIVAL, BGR


class Captured(NamedTuple):
    """One read: the image (channels in `order`); from cameras whose ISP can scale for free, the same frame at model
    size, RGB; and when the source knows it, the CLOCK_MONOTONIC time (seconds) the image was exposed or presented,
    with `stamp` saying which (else the pipeline stamps the read's return, ARRIVAL)."""

    image: np.ndarray
    lores: np.ndarray | None = None
    t_capture: float | None = None
    order: str = BGR
    stamp: str = ARRIVAL


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
    #: a camera or stream that can fail and come back: reopened with backoff by `Reconnecting`, never given up on.
    #: Files and images do not: they fail fast
    reconnects: bool = True
    #: frames the source could not decode and skipped (counted as `decode_error` drops)
    decode_errors: int = 0
    #: the camera's ring of encoded video when clips are on, set before `open`
    ring: PacketRing | None = None
    #: whether this source fills `ring` with its own encoded video (known at `open`: an H.264 stream's packets);
    #: if not, the capture lane encodes its frames into it (app/clips/encoder.py)
    fills_ring: bool = False

    @property
    def filled_ring(self) -> PacketRing | None:
        """`ring`, while this source fills it itself."""
        return self.ring if self.fills_ring else None

    @abstractmethod
    def open(self) -> None:
        """Open (or reopen after a failure). Raise `app.errors.SourceError` with the fix when it cannot."""

    @abstractmethod
    def read(self) -> Captured:
        """Return the next frame. Raise EndOfStream when a finite source is done, OSError when the device or
        stream failed (`Reconnecting` then closes it, backs off and calls `open` again)."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""
