"""The `yolo` kind: Ultralytics-style YOLO detectors with one raw output and no NMS in the model.

YOLOv5 gives [1, N, 5 + C] rows of (cx, cy, w, h, objectness, C class scores), a detection scoring objectness ×
class score; YOLOv8 to v11 give the transposed [1, 4 + C, N] (cx, cy, w, h, C class scores), scoring the class
score alone. The scores are already sigmoids. The layout is told by which dimension is N: N is the larger, and a
multiple of 21, since the three heads at strides 8, 16 and 32 give (H/32)(W/32) × 21 cells (× 3 anchors for v5).
Boxes come normalised to the input or in input pixels, depending on the export: values above 2 can only be pixels,
so those frames' boxes are divided by the input size. int8 and uint8 outputs are dequantised; the scores are
compared on the best class only, and boxes are dequantised only for the candidates. Overlapping boxes of one
class are suppressed (NMS, `nms_iou`), boxes of different classes never suppress each other. The class names are
the labels the pipeline gives, else those of the model's metadata (an Ultralytics export packs its `names`); the
log says which.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from app.frame import Detection, Frame, InputGeometry, has_area
from app.model.kinds.base import DETECTIONS, Decoder, Kind
from app.model.kinds.nms import nms
from app.model.runtime import LoadedModel, TensorSpec

if TYPE_CHECKING:
    from app.config import PostprocessParams
    from app.model.manifest import Labels

log = logging.getLogger(__name__)

#: cells of the three heads (strides 8, 16, 32) per stride-32 cell: 16 + 4 + 1
CELLS_PER_GRID = 21
#: box values above this are in input pixels: normalised ones stay near 0..1
PIXEL_BOXES_ABOVE = 2.0
#: the grey Ultralytics pads a letterbox with, in training and in its own predictor (the preprocess stage uses it)
LETTERBOX_GREY = 114


def mismatch(outputs: Sequence[TensorSpec]) -> str | None:
    """None for one output [1, N, 5 + C] (v5) or [1, 4 + C, N] (v8+), N the larger and a multiple of 21."""
    if len(outputs) == 1 and len(outputs[0].shape) == 3 and outputs[0].shape[0] == 1:
        _, rows, columns = outputs[0].shape
        boxes, values = max(rows, columns), min(rows, columns)
        least = 6 if rows > columns else 5  # v5 rows carry objectness too
        if boxes > values >= least and boxes % CELLS_PER_GRID == 0:
            return None
    return ("a yolo model has one output: [1, N, 5 + classes] (v5) or [1, 4 + classes, N] (v8 to v11), N the "
            "larger and a multiple of 21 (heads at strides 8, 16, 32)")


def is_v5(output: TensorSpec) -> bool:
    """Whether the output is v5's [1, N, 5 + C] rather than v8's transposed [1, 4 + C, N]."""
    return output.shape[1] > output.shape[2]


def candidates(values: np.ndarray, output: TensorSpec, v5: bool, min_score: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes [n, 4] as cx, cy, w, h dequantised, class ids [n], scores [n]) scoring at least `min_score`, from one
    output without its batch, in its own layout and encoding."""
    class_axis = 1 if v5 else 0
    class_scores = values[:, 5:] if v5 else values[4:]  # [N, C] or [C, N], a view
    # a quantised score keeps its order (positive scale): the best class score is taken on the codes, and the best
    # class only for the candidates (a max over the classes costs a small part of an argmax over them)
    scores = output.dequantize(class_scores.max(axis=class_axis))
    if v5:
        scores = scores * output.dequantize(values[:, 4])
    keep = np.flatnonzero(scores >= min_score)
    class_ids = np.take(class_scores, keep, axis=1 - class_axis).argmax(axis=class_axis)
    rows = values if v5 else values.T  # [N, features], a view
    return output.dequantize(rows[keep, :4]), class_ids, scores[keep]


def to_corners(boxes: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """cx, cy, w, h (normalised, or in input pixels when any value says so) as normalised x0, y0, x1, y1."""
    if boxes.size and boxes.max() > PIXEL_BOXES_ABOVE:
        boxes = boxes / np.array([*input_size, *input_size], np.float32)
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def classwise_nms(boxes: np.ndarray, class_ids: np.ndarray, scores: np.ndarray, iou: float,
                  max_results: int) -> list[int]:
    """NMS within each class: every class's boxes are moved apart by more than any box's size before one NMS."""
    apart = boxes + (class_ids * 4.0)[:, None] if boxes.size else boxes
    return nms(apart, scores, iou, max_results)


def decode_yolo(values: np.ndarray, output: TensorSpec, input_size: tuple[int, int], geometry: InputGeometry,
                labels: dict[int, str], params: PostprocessParams) -> list[Detection]:
    """Detections from one output (batch dropped), best first, boxes in source pixels (none without area)."""
    boxes, class_ids, scores = candidates(values, output, is_v5(output), params.min_score)
    corners = to_corners(boxes, input_size)
    kept = np.asarray(classwise_nms(corners, class_ids, scores, params.nms_iou, params.max_results), np.intp)
    xyxy = geometry.boxes_to_source(corners[kept])
    visible = has_area(xyxy)
    return [Detection(labels.get(int(class_ids[i]), str(int(class_ids[i]))), int(class_ids[i]), float(scores[i]),
                      (box[0], box[1], box[2], box[3]))
            for i, box in zip(kept[visible], xyxy[visible].tolist(), strict=True)]


def build(params: PostprocessParams, model: LoadedModel, labels: Labels) -> Decoder:
    (output,) = model.outputs
    input_size, names = model.input_size, labels.names
    if names:
        log.info("%s: %d class names from %s", model.path.name, len(names), labels.origin)
    else:
        log.info("%s: no class names (none given, none in its metadata): detections carry class ids",
                 model.path.name)

    def decode(frame: Frame) -> None:
        assert frame.geometry is not None
        frame.detections = decode_yolo(model.output(output)[0], output, input_size, frame.geometry, names, params)
    return decode


KIND = Kind("yolo", DETECTIONS, mismatch, build)
