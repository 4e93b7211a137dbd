"""A test clip made from one picture: the camera pans across it and zooms in and out, at the picture's size.

The bench's `--clip-from IMAGE` and the tests make their video this way at run time, so no media is committed. It
is H.264 as an IP camera sends it (PyAV's libx264: a keyframe every KEYFRAME_EVERY_S, no B-frames, BIT_RATE), so
the bench measures clips of it remuxed, as a camera's are.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import av.video
import cv2
import numpy as np

from app.errors import ConfigError

#: an IP camera's usual settings at 720p
BIT_RATE = 2_000_000
KEYFRAME_EVERY_S = 2.0


def make_clip(image_path: Path, clip_path: Path, frames: int, fps: float = 30.0) -> Path:
    """Write `frames` frames of H.264 video to `clip_path` (.mp4): a pan left to right, zooming to 1.3x and back."""
    image = cv2.imread(str(image_path))
    if image is None:
        raise ConfigError(f"{image_path}: not a readable image")
    height, width = image.shape[:2]
    with av.open(str(clip_path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        assert isinstance(stream, av.video.VideoStream), "libx264 makes a video stream"
        stream.width, stream.height, stream.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        stream.bit_rate = BIT_RATE
        stream.options = {"preset": "veryfast", "g": str(round(KEYFRAME_EVERY_S * fps)), "bf": "0"}
        for i in range(frames):
            t = i / max(1, frames - 1)
            zoom = 1 + 0.3 * (1 - abs(2 * t - 1))
            crop_w, crop_h = int(width / zoom), int(height / zoom)
            x0, y0 = int((width - crop_w) * t), (height - crop_h) // 2
            crop = image[y0:y0 + crop_h, x0:x0 + crop_w]
            picture = np.asarray(cv2.resize(crop, (stream.width, stream.height)), np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="bgr24")))
        container.mux(stream.encode())
    return clip_path
