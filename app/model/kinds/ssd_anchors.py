"""The `ssd_anchors` kind: raw SSD outputs that need anchors (BlazeFace and other MediaPipe detectors).

Anchors are generated like MediaPipe's SsdAnchorsCalculator with a fixed anchor size: feature layers of equal
stride share one grid, each layer adds `anchors_per_layer` anchors per cell, centres at `(cell + offset) / grid`.
A box is `regressor / box_scale + anchor centre` (the first four regressor values: centre x, centre y, w, h),
its score `sigmoid(logit)`, and overlapping boxes are suppressed (NMS), all vectorised with numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from app.errors import ConfigError
from app.frame import Detection, Frame, InputGeometry, has_area
from app.model.kinds.base import DETECTIONS, Decoder, Kind
from app.model.kinds.nms import nms
from app.model.runtime import LoadedModel, TensorSpec

if TYPE_CHECKING:
    from app.config import PostprocessParams
    from app.model.manifest import Labels


def mismatch(outputs: Sequence[TensorSpec]) -> str | None:
    """None for two outputs: regressors [1, N, >=4] and logits [1, N, 1]."""
    shapes = [o.shape for o in outputs]
    if (len(shapes) == 2 and all(len(s) == 3 for s in shapes) and shapes[0][1] == shapes[1][1]
            and sorted(s[2] for s in shapes)[0] == 1 and max(s[2] for s in shapes) >= 4):
        return None
    return "an ssd_anchors model has two outputs: box regressors [1, N, 4 or more] and score logits [1, N, 1]"


def ssd_anchors(strides: list[int], anchors_per_layer: int, offset: float, input_size: int) -> np.ndarray:
    """Anchor centres (N, 2) as x, y normalised to the input, in the order the model's outputs use."""
    centres = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = 1
        while layer + same < len(strides) and strides[layer + same] == stride:
            same += 1
        grid = int(np.ceil(input_size / stride))
        ys, xs = np.mgrid[0:grid, 0:grid]
        cells = np.stack([(xs.ravel() + offset) / grid, (ys.ravel() + offset) / grid], axis=1)
        centres.append(np.repeat(cells, anchors_per_layer * same, axis=0))
        layer += same
    return np.concatenate(centres).astype(np.float32)


def decode_anchors(regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray, box_scale: float,
                   geometry: InputGeometry, labels: dict[int, str], min_score: float, max_results: int,
                   nms_iou: float) -> list[Detection]:
    """Detections from regressors [N, K] and logits [N] (class 0 only), boxes in source pixels (none without area)."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80)))
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return []
    reg = regressors[keep, :4] / box_scale
    centre = reg[:, :2] + anchors[keep]
    half = reg[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    kept = nms(boxes, scores[keep], nms_iou, max_results)
    xyxy = geometry.boxes_to_source(boxes[kept])
    visible = has_area(xyxy)
    label = labels.get(0, "0")
    return [Detection(label, 0, float(scores[keep][i]), (box[0], box[1], box[2], box[3]))
            for i, box in zip(np.asarray(kept)[visible], xyxy[visible].tolist(), strict=True)]


def build(params: PostprocessParams, model: LoadedModel, labels: Labels) -> Decoder:
    a, names = params.anchors, labels.names
    regressors, logits = sorted(model.outputs, key=lambda o: -o.shape[2])
    input_w, _ = model.input_size
    anchors = ssd_anchors(a.strides, a.anchors_per_layer, a.offset, input_w)
    if len(anchors) != regressors.shape[1]:
        raise ConfigError(f"stages.postprocess.anchors: make {len(anchors)} anchors but {model.path.name} has "
                          f"{regressors.shape[1]} (check strides and anchors_per_layer)")
    box_scale = a.box_scale or input_w

    def decode(frame: Frame) -> None:
        assert frame.geometry is not None
        frame.detections = decode_anchors(
            model.output(regressors)[0], model.output(logits)[0, :, 0], anchors, box_scale,
            frame.geometry, names, params.min_score, params.max_results, params.nms_iou)
    return decode


KIND = Kind("ssd_anchors", DETECTIONS, mismatch, build)
