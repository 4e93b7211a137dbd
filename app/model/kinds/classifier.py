"""The `classifier` kind: dequantise, softmax when the outputs are logits, top-k above a score.

1001-class ImageNet models put a background class at index 0: it is never reported (which label file starts at
index 1 is `Labels.for_classes`'s business). Class ids are the model's output indices (286 is Egyptian cat).
A [1, N] output is also what an embedding model gives, so `auto` takes it for a classifier only when it looks
like class scores: quantised as probabilities (scale 1/256, as a quantised softmax is), or with labels that
name its N classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from app.frame import Classification, Frame
from app.model.kinds.base import CLASSES, Decoder, Kind
from app.model.runtime import LoadedModel, TensorSpec

if TYPE_CHECKING:
    from app.config import PostprocessParams
    from app.model.manifest import Labels

#: the scale of a quantised softmax: 256 steps from 0 to 1
PROBABILITY_SCALE = 1 / 256


def mismatch(outputs: Sequence[TensorSpec]) -> str | None:
    """None for one output [1, N] with N > 1."""
    if len(outputs) == 1 and len(outputs[0].shape) == 2 and outputs[0].shape[1] > 1:
        return None
    return "a classifier has one output: class scores [1, N]"


def doubt(outputs: Sequence[TensorSpec], labels: Labels) -> str | None:
    """None when the output looks like class scores: quantised as probabilities, or with labels that name its
    classes (a 1001-class ImageNet model's may leave out its background, class 0); else why it may not be."""
    (output,) = outputs
    if output.dtype in (np.uint8, np.int8) and abs(output.scale - PROBABILITY_SCALE) < 1e-6:
        return None
    count = output.shape[1]
    ids = labels.for_classes(count)
    if ids and max(ids) < count and len(ids) >= count - 1:
        return None
    return (f"its {count} values may be an embedding: a classifier's are quantised as probabilities or named by "
            f"its labels, which name {len(ids)}")


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


def build(params: PostprocessParams, model: LoadedModel, labels: Labels) -> Decoder:
    (output,) = model.outputs
    names = labels.for_classes(output.shape[1])

    def decode(frame: Frame) -> None:
        values = output.dequantize(model.output(output)[0])
        frame.classes = classify(values, names, params.min_score, params.max_results)
    return decode


KIND = Kind("classifier", CLASSES, mismatch, build, doubt)
