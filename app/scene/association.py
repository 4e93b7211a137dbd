"""Association: which detection continues which track, by overlap, as one optimal assignment.

`assign` takes the pairs that maximise the summed IoU (scipy's linear_sum_assignment, the Hungarian method SORT and
ByteTrack use) among those of at least the threshold, less a penalty the tracker gives: DIoU's distance between the
boxes' centres (`centre_distance`), which tells apart two people crossing, whose boxes overlap both predictions
alike. It takes as many pairs as can be first: one box well matched must not leave two others unmatched. Taking
the best pair first instead (greedy) can give one object's box to its neighbour when two meet and leave the other
unmatched: with IoUs [[0.9, 0.8], [0.7, 0]], greedy pairs only track 0 with box 0. On MOT15's TUD sequences, with
the Kalman filter's predictions, both scored the same.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (N, 4) with every box in `b` (M, 4), as (N, M)."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def centre_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """DIoU's penalty for every box in `a` (N, 4) with every box in `b` (M, 4), as (N, M): the squared distance
    between their centres over the squared diagonal of the smallest box enclosing both (0 for the same centre,
    towards 1 far apart)."""
    centres = (a[:, None, :2] + a[:, None, 2:]) / 2 - (b[None, :, :2] + b[None, :, 2:]) / 2
    enclosing = np.maximum(a[:, None, 2:], b[None, :, 2:]) - np.minimum(a[:, None, :2], b[None, :, :2])
    diagonal = (enclosing ** 2).sum(axis=2)
    return np.divide((centres ** 2).sum(axis=2), diagonal, out=np.zeros_like(diagonal), where=diagonal > 0)


def assign(iou: np.ndarray, threshold: float, penalty: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Pairs (row, column), each row and column at most once, of an IoU of at least `threshold`: as many as can be,
    and among those the ones with the largest summed IoU less `penalty` (the same shape, e.g. a weighted
    `centre_distance`); in row order."""
    allowed = iou >= threshold
    if not allowed.any():
        return []
    score = iou if penalty is None else iou - penalty
    low, spread = score[allowed].min(), np.ptp(score[allowed])
    # one pair more outweighs any better sum of fewer; a pair below the threshold must not steer the others
    gated = np.where(allowed, score - low + 1 + spread * min(iou.shape), 0.0)
    rows, columns = linear_sum_assignment(gated, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, columns, strict=True) if allowed[r, c]]
