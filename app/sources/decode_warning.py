"""`DecodeWarning`: what a source says about the frames it skipped because they did not decode (a corrupt MJPEG
frame off the USB bus, a damaged packet in a video file): one warning at most every DECODE_WARN_EVERY_S, with the
count so far, so a damaged file or a flaky camera is said without a line per frame. The count itself is the
source's `decode_errors`, which the pipeline turns into `decode_error` drops."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

#: at most one warning about undecodable frames this often
DECODE_WARN_EVERY_S = 10.0


class DecodeWarning:
    """Says a skipped frame of one source, at most every DECODE_WARN_EVERY_S."""

    def __init__(self) -> None:
        self._warned_at: float | None = None

    def say(self, description: str, message: str, count: int) -> None:
        """Warn `description: message (count so far)`, unless a warning was given less than DECODE_WARN_EVERY_S ago."""
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= DECODE_WARN_EVERY_S:
            log.warning("%s: %s (%d so far)", description, message, count)
            self._warned_at = now
