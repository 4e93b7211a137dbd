"""Decoder for raw SSD outputs that need anchors (BlazeFace and other MediaPipe detectors).

Anchors are generated like MediaPipe's SsdAnchorsCalculator with a fixed anchor size: feature layers of equal
stride share one grid, each layer adds `anchors_per_layer` anchors per cell, centres at `(cell + offset) / grid`.
A box is `regressor / box_scale + anchor centre` (the first four regressor values: centre x, centre y, w, h),
its score `sigmoid(logit)`, and overlapping boxes are suppressed (NMS), all vectorised with numpy.
"""

from __future__ import annotations

import numpy as np

from app.frame import Detection, InputGeometry, has_area


def is_ssd_anchors(shapes: list[tuple[int, ...]]) -> bool:
    """Two outputs: regressors [1, N, >=4] and logits [1, N, 1]."""
    return (len(shapes) == 2 and all(len(s) == 3 for s in shapes) and shapes[0][1] == shapes[1][1]
            and sorted(s[2] for s in shapes)[0] == 1 and max(s[2] for s in shapes) >= 4)


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


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_results: int) -> list[int]:
    """Indices of boxes (x0, y0, x1, y1) kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    while order.size and len(kept) < max_results:
        best, rest = order[0], order[1:]
        kept.append(int(best))
        x0 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y0 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x1 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y1 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        iou = inter / (areas[best] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return kept


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
