"""A frame's segmentation mask as a PNG, for `/api/mask.png` and the robot's `segments` message.

The PNG is 8-bit grey at the source frame's size, one value per pixel: its class id (the model's, named by its
labels and the robot's LabelInfo), 255 (`UNSEEN`) where the model's input did not cover the frame. It carries no
camera pixels, only where each class is; PNG is lossless, so a reader gets `Segments.mask_at_source()` back exactly.
"""

from __future__ import annotations

import cv2

from app.frame import Frame
from app.model.kinds.segmentation import SEGMENTS, Segments


def segments_of(frame: Frame) -> Segments | None:
    """The frame's segmentation, or None when its model does not segment."""
    segments = frame.kind_results.get(SEGMENTS)
    return segments if isinstance(segments, Segments) else None


def mask_png(segments: Segments) -> bytes:
    """The mask at source size, encoded as PNG (OpenCV's default, fast compression: a class map is mostly runs)."""
    ok, data = cv2.imencode(".png", segments.mask_at_source())
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()
