"""Privacy masking: a frame's image with the pixels of the configured labels hidden, before any image leaves.

`Output` asks once per frame and draws its overlay and encodes every JPEG from the result, so MJPEG, /snapshot.jpg,
snapshots and the MQTT image all carry the mask. The mask is the segmentation's class map at source size when the
frame's model segments, else the boxes of its detections (none found: nothing to hide). It fails closed (DESIGN.md,
"Privacy fails closed"): with privacy on, a frame that was not decoded, whose segmentation is missing, or whose model
gives neither (a classifier) has no mask, and `masked_image` raises `PrivacyUnmasked` rather than return it.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.config.privacy import PrivacyConfig
from app.frame import Frame
from app.model.kinds.base import DETECTIONS
from app.model.kinds.segmentation import SEGMENTS, Segments

#: the drop each publisher counts for an image it did not send because its frame had no mask
PRIVACY_UNMASKED = "privacy_unmasked"
#: how much smaller the image the blur is made from is: each side divided by this
BLUR_FACTOR = 24


class PrivacyUnmasked(Exception):
    """Privacy is on and this frame has no mask (not decoded, or by a model that gives neither segments nor boxes):
    none of its images may leave."""


def hidden_pixels(frame: Frame, labels: list[str]) -> np.ndarray:
    """Which source pixels are of `labels` (bool [height, width]): by the segmentation's classes, else by the boxes
    of the detections; PrivacyUnmasked when the frame has no mask."""
    segments = frame.kind_results.get(SEGMENTS)
    if frame.decoded == SEGMENTS and isinstance(segments, Segments):
        class_ids = [i for i, name in segments.labels.items() if name in labels]
        return np.isin(segments.mask_at_source(), class_ids)
    if frame.decoded != DETECTIONS:
        raise PrivacyUnmasked(f"frame {frame.seq} has no mask: {frame.decoded or 'not decoded'}, neither segments "
                              "nor boxes")
    hidden = np.zeros(frame.image.shape[:2], dtype=bool)
    for detection in frame.detections:
        if detection.label in labels:
            x0, y0, x1, y1 = detection.box
            hidden[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = True
    return hidden


def strong_blur(image: np.ndarray) -> np.ndarray:
    """The image shrunk BLUR_FACTOR times and grown back: nothing smaller than that many pixels stays readable."""
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, width // BLUR_FACTOR), max(1, height // BLUR_FACTOR)),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def masked_image(frame: Frame, privacy: PrivacyConfig) -> np.ndarray:
    """The frame's image as it may leave the device: itself with privacy off or nothing to hide, else a copy with
    the pixels of `privacy.labels` filled black or blurred; PrivacyUnmasked when the frame has no mask."""
    if not privacy.enabled:
        return frame.image
    hidden = hidden_pixels(frame, privacy.labels)
    if not hidden.any():
        return frame.image
    image = frame.image.copy()
    image[hidden] = 0 if privacy.mode == "fill" else strong_blur(frame.image)[hidden]
    return image
