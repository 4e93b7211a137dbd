"""The `embedding` kind: a model's one output as a unit vector, for telling one object from another by cosine.

An embedding model gives one output of D values, [1, D] or [1, 1, 1, D] (a MobileNet classifier cut at its pooled
features, app/model/cut.py: 1280 values for MobileNet v2). Its values are dequantised and L2-normalised, so the
cosine similarity of two embeddings is their dot product. An output quantised as probabilities (scale 1/256, a
softmax) is a classifier's scores, not features, and is refused. Such an output's shape is also a classifier's, so
`auto` never takes a model for an embedder: it is declared (the manifest's `kind: embedding`, or
`postprocess.kind`).

The frame's `Embedding` keeps the vector on the object; its JSON is only its size, as a mask's is its shares: a
thousand floats on every line would drown what a user reads there. A stage that embeds crops (not the frame)
takes the vector of the model's last run from `embedding_vector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from app.frame import Frame
from app.model.kinds.base import Decoder, Kind
from app.model.kinds.classifier import PROBABILITY_SCALE
from app.model.runtime import LoadedModel, TensorSpec

if TYPE_CHECKING:
    from app.config import PostprocessParams
    from app.model.manifest import Labels

#: the result key (`Frame.kind_results`, `Frame.result`)
EMBEDDING = "embedding"


def mismatch(outputs: Sequence[TensorSpec]) -> str | None:
    """None for one output of D > 1 values, every other dimension 1, not quantised as probabilities."""
    if len(outputs) == 1:
        (output,) = outputs
        shape = output.shape
        flat = len(shape) >= 2 and all(size == 1 for size in shape[:-1]) and shape[-1] > 1
        softmax = output.dtype in (np.uint8, np.int8) and abs(output.scale - PROBABILITY_SCALE) < 1e-6
        if flat and not softmax:
            return None
    return ("an embedding model has one output of features [1, D] or [1, 1, 1, D] (not probabilities: cut a "
            "classifier before its softmax)")


def normalised(values: np.ndarray) -> np.ndarray:
    """The values (dequantised) as a float32 vector of length 1; all zeros stay zeros (no direction to keep)."""
    vector = values.astype(np.float32).ravel()
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def embedding_vector(model: LoadedModel) -> np.ndarray:
    """The unit vector [D] of `model`'s last run (its one output, dequantised): what a stage that embeds crops
    attaches to each."""
    (output,) = model.outputs
    return normalised(output.dequantize(model.output(output)))


@dataclass(frozen=True)
class Embedding:
    """One image's embedding: a unit vector [D]."""

    vector: np.ndarray

    def as_json(self) -> dict:
        return {"dim": int(self.vector.size)}

    def similarity(self, other: Embedding) -> float:
        """Cosine similarity: 1 for the same direction."""
        return float(np.dot(self.vector, other.vector))


def build(params: PostprocessParams, model: LoadedModel, labels: Labels) -> Decoder:
    def decode(frame: Frame) -> None:
        frame.kind_results[EMBEDDING] = Embedding(embedding_vector(model))
    return decode


class DeclaredOnlyKind(Kind):
    """A kind `auto` never takes: a [1, D] output is also a classifier's, and no shape says that a model was made
    for features, so only a declaration does."""

    def recognises(self, outputs: Sequence[TensorSpec], labels: Labels) -> bool:
        return False


KIND = DeclaredOnlyKind(EMBEDDING, EMBEDDING, mismatch, build)
