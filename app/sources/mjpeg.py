"""`camera.decode_scale`: decoding a USB camera's MJPEG frames at 1/2, 1/4 or 1/8 of their size.

A UVC camera asked for `camera.fourcc: MJPG` sends one JPEG per frame, which OpenCV's V4L2 backend decodes at full
size. libjpeg can decode at a reduced scale through DCT scaling, for less, and a 300 x 300 model loses nothing from a
640 x 360 frame (DESIGN.md: pixels stay in the source's format until a consumer needs another). Owns choosing the
factor (`auto`: the largest the model input and the outputs allow) and the decode itself; `V4L2Source`
(app/sources/opencv.py) reads the raw JPEG and calls `decode_jpeg`.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.config import DeviceConfig

#: the factors libjpeg decodes at, and the imdecode flag for each
FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
         8: cv2.IMREAD_REDUCED_COLOR_8}


def decoded_side(side: int, scale: int) -> int:
    """A side of `side` pixels decoded at 1/`scale` (libjpeg rounds up)."""
    return -(-side // scale)


def needs_full_frame(device: DeviceConfig) -> bool:
    """Whether an output uses the frame at the camera's own size: the HTTP stream at the source's width
    (`http.stream.width: 0`), snapshot files, or MQTT (which publishes snapshot images)."""
    http = device.http
    return http.enabled and http.stream.width == 0 or device.snapshots.enabled or device.mqtt.enabled


def decode_scale(device: DeviceConfig, model_size: tuple[int, int]) -> int:
    """`camera.decode_scale` as a factor: the one configured, or for `auto` the largest at which a camera.width x
    camera.height frame still covers the model input (`model_size`, width and height) with both sides at least the
    input's larger side, so stretch, letterbox and crop all keep their detail, and is at least `http.stream.width`
    wide when the HTTP stream is on; 1 when an output needs the full frame."""
    camera = device.camera
    if isinstance(camera.decode_scale, int):
        return camera.decode_scale
    if needs_full_frame(device):
        return 1
    least_side = max(model_size)
    least_width = device.http.stream.width if device.http.enabled else 0
    return max((scale for scale in FLAGS if decoded_side(min(camera.width, camera.height), scale) >= least_side
                and decoded_side(camera.width, scale) >= least_width), default=1)


def decode_jpeg(buffer: np.ndarray, scale: int) -> np.ndarray:
    """The JPEG in `buffer` (uint8 bytes, any shape) decoded at 1/`scale`, BGR. Raises OSError when it does not
    decode (a frame cut short on the USB bus, or not a JPEG at all)."""
    undecodable = f"a {buffer.size}-byte frame does not decode as a JPEG"
    try:
        image = cv2.imdecode(buffer, FLAGS[scale])
    except cv2.error as exc:  # an empty buffer fails OpenCV's assertion instead of returning None
        raise OSError(undecodable) from exc
    if image is None:
        raise OSError(undecodable)
    return image
