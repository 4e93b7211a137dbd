"""Overlay: boxes with `label score` (and `#track_id`) in a stable colour per label, the camera's zones and lines
with their counts, the regions that moved (when asked), and a banner with fps, inference ms and time.

Always drawn on a copy of the frame, in the frame's own channel order, and only when an output asks for pixels
(`Output.annotated`), so a camera nobody is watching spends nothing on drawing.
"""

from __future__ import annotations

import time
import zlib

import cv2
import numpy as np

from app.config import OverlayParams
from app.frame import BGR, Frame


def label_colour(label: str) -> tuple[int, int, int]:
    """The same bright RGB colour for a label in every run (a hash of its name picks the hue)."""
    hue = zlib.crc32(label.encode()) % 180
    hsv = np.array([[[hue, 200, 255]]], np.uint8)
    red, green, blue = (int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
    return red, green, blue


def draw(frame: Frame, params: OverlayParams, fps: float) -> np.ndarray:
    """The frame's image with its results drawn on, as a new array in the frame's channel order."""
    image = frame.image.copy()
    order = (lambda rgb: rgb[::-1]) if frame.order == BGR else (lambda rgb: rgb)
    height, width = image.shape[:2]
    scale = max(0.4, min(width, height) / 720)
    thickness = max(1, round(2 * scale))
    font = cv2.FONT_HERSHEY_SIMPLEX
    if params.banner:
        inference = frame.timing.get("inference", 0.0)
        taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(frame.ts))  # when the image was, not now
        text = f"{fps:.1f} fps  inference {inference:.1f} ms  {taken}"
        (_, th), base = cv2.getTextSize(text, font, 0.6 * scale, thickness)
        cv2.rectangle(image, (0, 0), (width, th + base + 10), (0, 0, 0), cv2.FILLED)
        cv2.putText(image, text, (8, th + 5), font, 0.6 * scale, (255, 255, 255), thickness, cv2.LINE_AA)
    if params.motion and frame.motion is not None:
        for x0, y0, x1, y1 in frame.motion.boxes:
            cv2.rectangle(image, (x0, y0), (x1, y1), order(MOTION_COLOUR), max(1, thickness // 2))
    if params.zones and frame.scene is not None:
        draw_scene(image, frame, scale, thickness)
    if params.boxes:
        for d in frame.detections:
            colour = order(label_colour(d.label))
            x0, y0, x1, y1 = (round(v) for v in d.box)
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, thickness)
            text = f"{d.label} {d.score:.2f}" + (f" #{d.track_id}" if d.track_id is not None else "")
            (tw, th), base = cv2.getTextSize(text, font, 0.6 * scale, thickness)
            ty = max(y0, th + base + 2)
            cv2.rectangle(image, (x0, ty - th - base - 2), (x0 + tw + 4, ty), colour, cv2.FILLED)
            cv2.putText(image, text, (x0 + 2, ty - base), font, 0.6 * scale, (0, 0, 0), thickness, cv2.LINE_AA)
        for i, c in enumerate(frame.classes[:3]):
            cv2.putText(image, f"{c.label} {c.score:.2f}", (8, round((60 + 30 * i) * scale)), font, 0.7 * scale,
                        order(label_colour(c.label)), thickness, cv2.LINE_AA)
    return image


#: zones and lines are drawn in white, their names and counts on black
SCENE_COLOUR = (255, 255, 255)
#: motion regions in red (RGB)
MOTION_COLOUR = (255, 0, 0)


def draw_scene(image: np.ndarray, frame: Frame, scale: float, thickness: int) -> None:
    """The zones (outline, `name count`) and lines (an arrow from `from` to `to`, `name in N out M`)."""
    assert frame.scene is not None
    font = cv2.FONT_HERSHEY_SIMPLEX

    def caption(text: str, x: float, y: float) -> None:
        (tw, th), base = cv2.getTextSize(text, font, 0.5 * scale, thickness)
        x0, y0 = int(min(max(0, x), image.shape[1] - tw - 4)), int(min(max(th + base, y), image.shape[0]))
        cv2.rectangle(image, (x0, y0 - th - base), (x0 + tw + 4, y0), (0, 0, 0), cv2.FILLED)
        cv2.putText(image, text, (x0 + 2, y0 - base), font, 0.5 * scale, SCENE_COLOUR, thickness, cv2.LINE_AA)

    for zone in frame.scene.zones:
        points = zone.polygon.round().astype(np.int32)
        cv2.polylines(image, [points], True, SCENE_COLOUR, thickness, cv2.LINE_AA)
        caption(f"{zone.name} {frame.zone_counts.get(zone.name, 0)}", *points.min(axis=0))
    for line in frame.scene.lines:
        start, end = (tuple(int(v) for v in point.round()) for point in (line.start, line.end))
        cv2.arrowedLine(image, start, end, SCENE_COLOUR, thickness, cv2.LINE_AA, tipLength=0.03)
        counts = frame.line_counts.get(line.name, {})
        caption(f"{line.name} in {counts.get('in', 0)} out {counts.get('out', 0)}", *start)
