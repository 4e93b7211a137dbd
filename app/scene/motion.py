"""Motion gating: infer only while something moves, objects are tracked, or a keep-alive is due.

`MotionDetector` runs in the capture lane on every captured frame, on a small grey copy (MOTION_HEIGHT pixels
high, as Frigate's detector): the blurred frame is compared with a running average of the frames before it, the
pixels that differ by more than `threshold` (outside the `mask` polygons) are counted, and `min_area` of the
frame is motion. `MotionGate` decides, still in the capture lane, whether the frame goes on to the model: when it
moves, while a tracked object is in view (the track stage's tracker says so), and at least every `keepalive_s`
(a still scene is re-checked: a parked car that arrived between two checks is found). `camera.detect_fps` caps
how often any frame is inferred. A frame gated out is never handed over: it costs its decode and this check only,
and is counted as a `no_motion` drop; `/api/stats` shows the duty cycle (`motion.duty_cycle`, inferred frames over
captured frames since start).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from app.config import MotionConfig
from app.scene.zones import in_pixels

#: the height of the grey frame motion is detected on
MOTION_HEIGHT = 100
#: how fast the background follows the picture (a share of each new frame): light changing slowly is no motion
BACKGROUND_ALPHA = 0.05


@dataclass(frozen=True)
class Motion:
    """What moved in one frame: the share of the (unmasked) picture, and the moving regions' boxes in frame
    pixels (x0, y0, x1, y1)."""

    fraction: float
    boxes: tuple[tuple[int, int, int, int], ...]


class MotionDetector:
    def __init__(self, config: MotionConfig, captured: tuple[int, int] | None = None) -> None:
        """`captured`: the size the mask's pixel values are in, when frames may come smaller (app/scene/zones.py
        `captured_size`); else they are pixels of the frame."""
        self.config = config
        self._captured = captured
        self._background: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> Motion:
        """Compare `image` (H x W x 3, either channel order) with the background, then fold it in."""
        height, width = image.shape[:2]
        small_size = (max(1, round(width * MOTION_HEIGHT / height)), MOTION_HEIGHT)
        grey = cv2.cvtColor(cv2.resize(image, small_size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        grey = cv2.GaussianBlur(grey, (5, 5), 0)
        if self._background is None or self._size != (width, height):
            self._background, self._size = grey.astype(np.float32), (width, height)
            self._mask = self._unmasked(small_size, self._captured or (width, height))
            return Motion(1.0, ((0, 0, width, height),))  # nothing to compare with: as if everything moved
        moving = cv2.absdiff(grey, cv2.convertScaleAbs(self._background)) > self.config.threshold
        assert self._mask is not None
        moving &= self._mask
        cv2.accumulateWeighted(grey, self._background, BACKGROUND_ALPHA)
        fraction = float(np.count_nonzero(moving)) / max(1, int(np.count_nonzero(self._mask)))
        if fraction < self.config.min_area:
            return Motion(fraction, ())
        regions = cv2.dilate(moving.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
        contours, _ = cv2.findContours(regions, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        scale = height / MOTION_HEIGHT
        boxes = tuple((round(x * scale), round(y * scale), round((x + w) * scale), round((y + h) * scale))
                      for x, y, w, h in (cv2.boundingRect(c) for c in contours))
        return Motion(fraction, boxes)

    def _unmasked(self, size: tuple[int, int], pixels_of: tuple[int, int]) -> np.ndarray:
        """True where motion counts on the `size` grey frame: everywhere but the mask polygons, whose pixel values
        are of a `pixels_of` picture."""
        mask = np.full((size[1], size[0]), 255, np.uint8)
        for polygon in self.config.mask:
            cv2.fillPoly(mask, [in_pixels(polygon, size, pixels_of).round().astype(np.int32)], 0)
        return mask > 0


class MotionGate:
    """Whether a captured frame is inferred; counts what it lets through. `tracking` says whether the track stage
    has an object in view (False without one). With `enabled` False only `detect_fps` gates."""

    def __init__(self, config: MotionConfig, enabled: bool, detect_fps: float, tracking: Callable[[], bool],
                 captured: tuple[int, int] | None = None) -> None:
        self.detector = MotionDetector(config, captured) if enabled else None
        self.keepalive_s = config.keepalive_s
        self.min_interval = 1.0 / detect_fps if detect_fps else 0.0
        self.tracking = tracking
        self.captured = 0
        self.inferred = 0
        self._last: float | None = None

    def admit(self, image: np.ndarray, now: float) -> tuple[str | None, Motion | None]:
        """Why the frame captured at `now` is not inferred (`detect_fps`, `no_motion`), or None when it is; and its
        motion (None when not looked at)."""
        self.captured += 1
        if self._last is not None and now - self._last < self.min_interval:
            return "detect_fps", None
        motion = self.detector.detect(image) if self.detector else None
        due = (motion is None or motion.boxes or self.tracking() or self._last is None
               or now - self._last >= self.keepalive_s)
        if not due:
            return "no_motion", motion
        self._last = now
        self.inferred += 1
        return None, motion

    def document(self) -> dict:
        """For /api/stats: on or off, frames captured and inferred, the duty cycle."""
        return {"enabled": self.detector is not None, "captured": self.captured, "inferred": self.inferred,
                "duty_cycle": round(self.inferred / self.captured, 4) if self.captured else None}
