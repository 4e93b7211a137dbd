"""Decoder for image classifiers: dequantise, softmax when the outputs are logits, top-k above a score.

1001-class ImageNet models put a background class at index 0: it is never reported (which label file starts at
index 1 is `Labels.for_classes`'s business). Class ids are the model's output indices (286 is Egyptian cat).
"""

from __future__ import annotations

import numpy as np

from app.frame import Classification


def is_classifier(shapes: list[tuple[int, ...]]) -> bool:
    return len(shapes) == 1 and len(shapes[0]) == 2 and shapes[0][1] > 1


def probabilities(values: np.ndarray) -> np.ndarray:
    """Scores as probabilities: kept when they already are, softmax of logits otherwise."""
    if values.min() >= 0 and values.max() <= 1.0 + 1e-3:
        return values
    exp = np.exp(values - values.max())
    return exp / exp.sum()


def classify(values: np.ndarray, labels: dict[int, str], min_score: float, top_k: int) -> list[Classification]:
    """Top-k classes of one output row (already dequantised), best first."""
    scores = probabilities(values.astype(np.float32))
    if scores.size == 1001:
        scores = scores.copy()
        scores[0] = -1.0
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [Classification(labels.get(int(i), str(int(i))), int(i), float(scores[i]))
            for i in order if scores[i] >= min_score]
