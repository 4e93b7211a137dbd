"""The `ssd` kind: SSD models with the `TFLite_Detection_PostProcess` op (boxes, classes, scores and a count).

The op's outputs come in TF1 order (boxes, classes, scores, count) or TF2 order (scores, boxes, count, classes).
Roles are decided from the tensors, never from position alone: boxes are the [1, N, 4] tensor and count the [1]
one; classes and scores are told apart by signature name, then by the op's output names, then by their values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from app.frame import Detection, Frame, InputGeometry, has_area
from app.model.kinds.base import DETECTIONS, Decoder, Kind
from app.model.runtime import LoadedModel, TensorSpec

if TYPE_CHECKING:
    from app.config import PostprocessParams
    from app.model.manifest import Labels

_TF1_SUFFIX_ROLE = {"": "boxes", ":1": "classes", ":2": "scores", ":3": "count"}
_SIGNATURE_ROLE = {"detection_boxes": "boxes", "detection_classes": "classes",
                   "detection_scores": "scores", "num_detections": "count"}


def mismatch(outputs: Sequence[TensorSpec]) -> str | None:
    """None for the op's four outputs: boxes [1, N, 4], classes and scores [1, N], a count [1]."""
    ranks = sorted(len(o.shape) for o in outputs)
    if len(outputs) == 4 and ranks == [1, 2, 2, 3] and any(o.shape[-1] == 4 and len(o.shape) == 3 for o in outputs):
        return None
    return "an ssd model has four outputs: boxes [1, N, 4], classes and scores [1, N], a count [1]"


@dataclass(frozen=True)
class SsdTensors:
    """Which output is which; `classes`/`scores` are None when only the values can tell them apart."""

    boxes: TensorSpec
    count: TensorSpec
    pair: tuple[TensorSpec, TensorSpec]
    classes: TensorSpec | None = None
    scores: TensorSpec | None = None

    @classmethod
    def of(cls, model: LoadedModel) -> SsdTensors:
        by_index = {o.index: o for o in model.outputs}
        roles = {_SIGNATURE_ROLE[n]: by_index[i] for n, i in model.output_names.items() if n in _SIGNATURE_ROLE}
        if len(roles) < 4:
            base = "TFLite_Detection_PostProcess"
            roles = {_TF1_SUFFIX_ROLE[o.name[len(base):]]: o for o in model.outputs
                     if o.name.startswith(base) and o.name[len(base):] in _TF1_SUFFIX_ROLE}
        boxes = next(o for o in model.outputs if len(o.shape) == 3)
        count = next(o for o in model.outputs if len(o.shape) == 1)
        first, second = (o for o in model.outputs if len(o.shape) == 2)
        pair = (first, second)
        if len(roles) == 4:
            return cls(boxes, count, pair, roles["classes"], roles["scores"])
        return cls(boxes, count, pair)

    def read(self, model: LoadedModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes [n, 4] as ymin, xmin, ymax, xmax normalised; class ids [n]; scores [n])."""
        n = int(model.output(self.count).reshape(-1)[0])
        boxes = model.output(self.boxes)[0, :n]
        if self.classes is not None and self.scores is not None:
            return boxes, model.output(self.classes)[0, :n], model.output(self.scores)[0, :n]
        first, second = (model.output(t)[0, :n] for t in self.pair)
        # class ids are whole numbers; scores are not (both whole only when nothing scored: order is then moot)
        return (boxes, first, second) if np.all(first == np.round(first)) else (boxes, second, first)


def decode_ssd(boxes: np.ndarray, class_ids: np.ndarray, scores: np.ndarray, geometry: InputGeometry,
               labels: dict[int, str], min_score: float, max_results: int) -> list[Detection]:
    """Detections above `min_score`, best first, boxes in source pixels; boxes with no area there are dropped."""
    keep = np.flatnonzero(scores >= min_score)
    keep = keep[np.argsort(-scores[keep], kind="stable")][:max_results]
    xyxy = geometry.boxes_to_source(boxes[keep][:, [1, 0, 3, 2]])
    visible = has_area(xyxy)
    return [Detection(labels.get(int(class_ids[i]), str(int(class_ids[i]))), int(class_ids[i]), float(scores[i]),
                      (box[0], box[1], box[2], box[3]))
            for i, box in zip(keep[visible], xyxy[visible].tolist(), strict=True)]


def build(params: PostprocessParams, model: LoadedModel, labels: Labels) -> Decoder:
    tensors, names = SsdTensors.of(model), labels.names

    def decode(frame: Frame) -> None:
        assert frame.geometry is not None
        frame.detections = decode_ssd(*tensors.read(model), frame.geometry, names, params.min_score,
                                      params.max_results)
    return decode


KIND = Kind("ssd", DETECTIONS, mismatch, build)
