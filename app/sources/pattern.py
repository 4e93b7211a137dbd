"""`source: pattern`: a synthetic moving scene, so the whole pipeline runs and can be tested with no hardware.

Owns drawing frame N (a gradient, a rectangle crossing it, a bouncing circle and the number N) at
camera.width x camera.height, paced at camera.fps like a live camera. Frame N is the same every run.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.config import CameraConfig
from app.sources.base import Captured, Source
from app.sources.pacer import Pacer

CROSSING_S = 4.0  # seconds the shapes take to cross the frame


def _bounce(travel: float, span: int) -> int:
    """Position after `travel` pixels of going back and forth over 0..span."""
    travel %= 2 * span
    return int(travel if travel < span else 2 * span - travel)


class PatternSource(Source):
    """Moving shapes on a gradient with the frame number drawn in, at the configured size and rate."""

    live = True

    def __init__(self, camera: CameraConfig) -> None:
        self.camera = camera
        self.description = f"test pattern {camera.width}x{camera.height} at {camera.fps:g} fps"
        self._pacer = Pacer(camera.fps)
        self._seq = 0
        w, h = camera.width, camera.height
        self._background = np.empty((h, w, 3), np.uint8)
        self._background[..., 2] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]  # red, left to right
        self._background[..., 1] = 64
        self._background[..., 0] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]  # blue, top to bottom

    def render(self, n: int) -> np.ndarray:
        """Frame `n`, H x W x 3 uint8, BGR like a camera read through OpenCV."""
        w, h = self.camera.width, self.camera.height
        unit = min(w, h)
        speed = w / (CROSSING_S * self.camera.fps)  # pixels per frame
        image = self._background.copy()
        rect_w, rect_h = max(1, w // 6), max(1, h // 5)
        x = int(n * speed) % (w + rect_w) - rect_w
        cv2.rectangle(image, (x, h // 4), (x + rect_w, h // 4 + rect_h), (40, 40, 230), cv2.FILLED)
        r = max(1, unit // 8)
        centre = (r + _bounce(n * speed, max(1, w - 2 * r)), r + _bounce(n * speed * 0.7, max(1, h - 2 * r)))
        cv2.circle(image, centre, r, (60, 220, 40), cv2.FILLED, cv2.LINE_AA)
        cv2.putText(image, str(n), (unit // 20, h - unit // 20), cv2.FONT_HERSHEY_SIMPLEX, unit / 240,
                    (255, 255, 255), max(1, unit // 160), cv2.LINE_AA)
        return image

    def open(self) -> None:
        """Nothing to open; the frame count carries on across reopens."""

    def read(self) -> Captured:
        self._pacer.wait()
        image = self.render(self._seq)
        self._seq += 1
        return Captured(image)

    def close(self) -> None:
        """Nothing to release."""
