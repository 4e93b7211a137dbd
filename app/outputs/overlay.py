"""Overlay: boxes with `label score` (a taught `name` after the label, and `#track_id`) in a stable colour per
label, segmentation's classes tinted their label's colour, pose skeletons (COCO's limbs between the keypoints the
model is sure enough of), the camera's zones and lines with their counts, the regions that moved (when asked), and
a banner with fps, inference ms and time.

Always drawn on a copy of the frame, in the frame's own channel order, and only when an output asks for pixels
(`Output.annotated`), so a camera nobody is watching spends nothing on drawing. The classes are tinted with one
table lookup and one OpenCV multiply over the frame (no Python per pixel), so a segmentation pipeline's overlay
stays a small part of its inference time.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

import cv2
import numpy as np

from app.config import OverlayParams
from app.frame import BGR, Detection, Frame
from app.model.kinds.pose import KEYPOINT_NAMES, POSES, Poses
from app.model.kinds.segmentation import SEGMENTS, UNSEEN, Segments

#: an RGB colour (or BGR, once put in the frame's order)
RGBColour = tuple[int, int, int]
#: a keypoint's x, y (source pixels) and score
Keypoint = tuple[float, float, float]
FONT = cv2.FONT_HERSHEY_SIMPLEX
#: how far a class's pixels are tinted towards its label's colour (0: not at all, 1: the colour alone)
SEGMENT_TINT = 0.6
#: the class segmentation leaves untinted, by id and by name (PASCAL VOC's class 0)
BACKGROUND_ID, BACKGROUND = 0, "background"
#: poses from a pose model are drawn in this label's colour
PERSON = "person"
#: COCO's skeleton (the `skeleton` of person_keypoints in its annotations, by name): the limbs drawn between
#: keypoints (MoveNet's and the crop stage's)
LIMBS = (("left_ankle", "left_knee"), ("left_knee", "left_hip"), ("right_ankle", "right_knee"),
         ("right_knee", "right_hip"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
         ("right_shoulder", "right_hip"), ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"),
         ("right_shoulder", "right_elbow"), ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"),
         ("left_eye", "right_eye"), ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
         ("right_eye", "right_ear"), ("left_ear", "left_shoulder"), ("right_ear", "right_shoulder"))


def label_colour(label: str) -> RGBColour:
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
    segments = frame.kind_results.get(SEGMENTS)
    if params.segments and isinstance(segments, Segments):
        image = tint_segments(image, segments, order)
    if params.banner:
        draw_banner(image, frame, fps, scale, thickness)
    if params.motion and frame.motion is not None:
        for x0, y0, x1, y1 in frame.motion.boxes:
            cv2.rectangle(image, (x0, y0), (x1, y1), order(MOTION_COLOUR), max(1, thickness // 2))
    if params.zones and frame.scene is not None:
        draw_scene(image, frame, scale, thickness)
    if params.boxes:
        draw_boxes(image, frame, order, scale, thickness)
    if params.poses:
        for points, colour in skeletons(frame):
            draw_skeleton(image, points, order(colour), params.keypoint_min_score, thickness)
    return image


def draw_banner(image: np.ndarray, frame: Frame, fps: float, scale: float, thickness: int) -> None:
    """fps, inference ms and the time of the frame's stamp, white on a black band along the top."""
    inference = frame.timing.get("inference", 0.0)
    taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(frame.ts))  # when the image was, not now
    text = f"{fps:.1f} fps  inference {inference:.1f} ms  {taken}"
    (_, th), base = cv2.getTextSize(text, FONT, 0.6 * scale, thickness)
    cv2.rectangle(image, (0, 0), (image.shape[1], th + base + 10), (0, 0, 0), cv2.FILLED)
    cv2.putText(image, text, (8, th + 5), FONT, 0.6 * scale, (255, 255, 255), thickness, cv2.LINE_AA)


def box_caption(detection: Detection) -> str:
    """`label [name] score [#track_id]`: the name the teach step gave it (app/teach/) after its label."""
    name = detection.attributes.get("name")
    return " ".join([detection.label, *([str(name)] if name else []), f"{detection.score:.2f}",
                     *([f"#{detection.track_id}"] if detection.track_id is not None else [])])


def draw_boxes(image: np.ndarray, frame: Frame, order: Callable[[RGBColour], RGBColour], scale: float,
               thickness: int) -> None:
    """Each detection's box with `label score #track_id`, and a classifier's top three classes."""
    for d in frame.detections:
        colour = order(label_colour(d.label))
        x0, y0, x1, y1 = (round(v) for v in d.box)
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, thickness)
        text = box_caption(d)
        (tw, th), base = cv2.getTextSize(text, FONT, 0.6 * scale, thickness)
        ty = max(y0, th + base + 2)
        cv2.rectangle(image, (x0, ty - th - base - 2), (x0 + tw + 4, ty), colour, cv2.FILLED)
        cv2.putText(image, text, (x0 + 2, ty - base), FONT, 0.6 * scale, (0, 0, 0), thickness, cv2.LINE_AA)
    for i, c in enumerate(frame.classes[:3]):
        cv2.putText(image, f"{c.label} {c.score:.2f}", (8, round((60 + 30 * i) * scale)), FONT, 0.7 * scale,
                    order(label_colour(c.label)), thickness, cv2.LINE_AA)


def tint_segments(image: np.ndarray, segments: Segments, order: Callable[[RGBColour], RGBColour]) -> np.ndarray:
    """The image with each class but the background tinted its label's colour: every pixel multiplied by
    (1 - SEGMENT_TINT) + SEGMENT_TINT * colour / 255, one lookup per pixel and one multiply in OpenCV. Multiplying
    keeps black black, so a privacy fill drawn under the overlay stays black; background and unseen pixels are left
    as they were."""
    factors = np.full((UNSEEN + 1, 3), 255, np.uint8)
    for class_id in segments.shares:
        label = segments.labels.get(class_id, str(class_id))
        if class_id != BACKGROUND_ID and label != BACKGROUND:
            factors[class_id] = np.round(255 * (1 - SEGMENT_TINT) + SEGMENT_TINT * np.array(order(label_colour(label))))
    mask = segments.mask_at_source()
    return cv2.multiply(image, cv2.LUT(cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR), factors.reshape(UNSEEN + 1, 1, 3)),
                        scale=1 / 255)


def skeletons(frame: Frame) -> list[tuple[dict[str, Keypoint], RGBColour]]:
    """Each pose's keypoints by name (the `poses` of a pose model, in the colour of `person`) and each detection's
    `keypoints` (from the crop stage, in its label's colour)."""
    found: list[tuple[dict[str, Keypoint], RGBColour]] = []
    poses = frame.kind_results.get(POSES)
    if isinstance(poses, Poses):
        found += [(dict(zip(KEYPOINT_NAMES, map(tuple, pose.keypoints.tolist()), strict=True)), label_colour(PERSON))
                  for pose in poses.poses]
    found += [({k["name"]: (k["x"], k["y"], k["score"]) for k in d.attributes["keypoints"]}, label_colour(d.label))
              for d in frame.detections if d.attributes.get("keypoints")]
    return found


def draw_skeleton(image: np.ndarray, points: dict[str, Keypoint], colour: RGBColour, min_score: float,
                  thickness: int) -> None:
    """COCO's limbs between keypoints that both score at least `min_score`, and a dot on each such keypoint."""
    seen = {name: (round(x), round(y)) for name, (x, y, score) in points.items() if score >= min_score}
    for start, end in LIMBS:
        if start in seen and end in seen:
            cv2.line(image, seen[start], seen[end], colour, thickness, cv2.LINE_AA)
    for centre in seen.values():
        cv2.circle(image, centre, thickness + 2, colour, cv2.FILLED, cv2.LINE_AA)


#: zones and lines are drawn in white, their names and counts on black
SCENE_COLOUR = (255, 255, 255)
#: motion regions in red (RGB)
MOTION_COLOUR = (255, 0, 0)


def draw_scene(image: np.ndarray, frame: Frame, scale: float, thickness: int) -> None:
    """The zones (outline, `name count`) and lines (an arrow from `from` to `to`, `name in N out M`)."""
    assert frame.scene is not None

    def caption(text: str, x: float, y: float) -> None:
        (tw, th), base = cv2.getTextSize(text, FONT, 0.5 * scale, thickness)
        x0, y0 = int(min(max(0, x), image.shape[1] - tw - 4)), int(min(max(th + base, y), image.shape[0]))
        cv2.rectangle(image, (x0, y0 - th - base), (x0 + tw + 4, y0), (0, 0, 0), cv2.FILLED)
        cv2.putText(image, text, (x0 + 2, y0 - base), FONT, 0.5 * scale, SCENE_COLOUR, thickness, cv2.LINE_AA)

    for zone in frame.scene.zones:
        points = zone.polygon.round().astype(np.int32)
        cv2.polylines(image, [points], True, SCENE_COLOUR, thickness, cv2.LINE_AA)
        caption(f"{zone.name} {frame.zone_counts.get(zone.name, 0)}", *points.min(axis=0))
    for line in frame.scene.lines:
        start, end = (tuple(int(v) for v in point.round()) for point in (line.start, line.end))
        cv2.arrowedLine(image, start, end, SCENE_COLOUR, thickness, cv2.LINE_AA, tipLength=0.03)
        counts = frame.line_counts.get(line.name, {})
        caption(f"{line.name} in {counts.get('in', 0)} out {counts.get('out', 0)}", *start)
