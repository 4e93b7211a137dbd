"""Frame stamps from what a source knows about its own frames, or None when that is not to be trusted.

Owns turning a device's or a stream's time for a frame into a CLOCK_MONOTONIC stamp (seconds): `device_time` checks
a time a driver says is on the monotonic clock (a V4L2 buffer's timestamp, libcamera's SensorTimestamp: a driver on
another clock, or with no timestamp at all, gives a time that is no moment of the last second); `exposure_start`
reads picamera2's metadata; `PresentationClock` maps a stream's presentation times (pts) onto the monotonic clock.
None means the source does not know, and the pipeline stamps the frame's arrival. Pure functions of the numbers
given, so the sources stay thin and this is tested with numbers (tests/test_stamps.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

#: a device's time for a frame is believed when it is at most this long before the read returned (and not after)
PLAUSIBLE_S = 1.0
#: a stream whose frame arrives this much later than its pts says is a different stream (a reconnect inside FFmpeg,
#: a pts jump): the clock anchors afresh
BOUND_S = 2.0
#: the stream's pts is checked against its arrival over windows this long ...
WINDOW_S = 1.0
#: ... and trusted while the least delay of one window differs from the last window's by at most this
TOLERANCE_S = 0.1


def device_time(t: float, now: float) -> float | None:
    """`t`, a driver's time (seconds) for a frame that it says is on CLOCK_MONOTONIC, when it is at most PLAUSIBLE_S
    before `now` (the read's return) and not after it; else None."""
    return t if now - PLAUSIBLE_S <= t <= now else None


def exposure_start(metadata: Mapping[str, object], now: float) -> float | None:
    """When the first row of a picamera2 frame began its exposure: SensorTimestamp (ns), when the first row was read
    out (raspberrypi/picamera2#821), less ExposureTime (µs); None when either is missing or the timestamp is not a
    moment of the last PLAUSIBLE_S before `now`."""
    sensor, exposure = metadata.get("SensorTimestamp"), metadata.get("ExposureTime")
    if not isinstance(sensor, int) or not isinstance(exposure, int | float):
        return None
    if device_time(sensor / 1e9, now) is None:
        return None
    return (sensor - exposure * 1000) / 1e9


class PresentationClock:
    """A stream's pts (seconds, as FFmpeg reports them) on the monotonic clock: pts + offset, the offset being the
    least delay (arrival - pts) seen, so a frame is never stamped after it arrived and a frame that came late (the
    network stalled) keeps the earlier time its pts gives.

    The pts is trusted only while it keeps time with the arrivals: over each WINDOW_S the least delay must stay
    within TOLERANCE_S of the last window's. FFmpeg makes up pts for streams that carry none (HTTP MJPEG: steps of
    1/25 s whatever the camera's rate), which run slower or faster than the frames come; those frames, and those of
    the first two windows after an anchor, have no stamp here (None: their arrival is theirs). A pts that goes back
    or a frame more than BOUND_S later than its pts says anchors the clock afresh; a pts that does not advance is no
    presentation time at all (FFmpeg reports 0 when a frame has none).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the stream (it was reopened): the next frame anchors the clock."""
        self._offset: float | None = None
        self._last_pts = math.nan
        self._trusted = False
        self._window_start = self._window_least = 0.0
        self._previous_least: float | None = None

    def stamp(self, pts: float, arrival: float) -> float | None:
        """The monotonic time of the frame with presentation time `pts` that arrived at `arrival`, or None."""
        if not math.isfinite(pts) or pts == self._last_pts:
            return None
        delay = arrival - pts
        if self._offset is None or pts < self._last_pts or delay - self._offset > BOUND_S:
            self._anchor(pts, arrival, delay)
            return None
        self._last_pts = pts
        self._offset = min(self._offset, delay)
        self._window_least = min(self._window_least, delay)
        if arrival - self._window_start >= WINDOW_S:
            self._trusted = (self._previous_least is not None
                             and abs(self._window_least - self._previous_least) <= TOLERANCE_S)
            # follow the stream: a pts that runs slow by less than the tolerance is not let drift for long
            self._offset = self._previous_least = self._window_least
            self._window_start, self._window_least = arrival, math.inf
        return pts + self._offset if self._trusted else None

    def _anchor(self, pts: float, arrival: float, delay: float) -> None:
        self._offset, self._last_pts, self._trusted = delay, pts, False
        self._window_start, self._window_least, self._previous_least = arrival, delay, None
