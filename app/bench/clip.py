"""A test clip made from one picture: the camera pans across it and zooms in and out, at the picture's size.

The bench's `--clip-from IMAGE` and the tests make their video this way at run time, so no media is committed.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from app.errors import ConfigError


def make_clip(image_path: Path, clip_path: Path, frames: int, fps: float = 30.0) -> Path:
    """Write `frames` frames of MPEG-4 video to `clip_path` (.mp4): a pan left to right, zooming to 1.3x and back."""
    image = cv2.imread(str(image_path))
    if image is None:
        raise ConfigError(f"{image_path}: not a readable image")
    height, width = image.shape[:2]
    writer = cv2.VideoWriter(str(clip_path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    for i in range(frames):
        t = i / max(1, frames - 1)
        zoom = 1 + 0.3 * (1 - abs(2 * t - 1))
        crop_w, crop_h = int(width / zoom), int(height / zoom)
        x0, y0 = int((width - crop_w) * t), (height - crop_h) // 2
        writer.write(cv2.resize(image[y0:y0 + crop_h, x0:x0 + crop_w], (width, height)))
    writer.release()
    return clip_path
