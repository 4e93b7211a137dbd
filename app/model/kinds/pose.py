"""The `pose` kind: MoveNet's human poses, 17 COCO keypoints each, in source-frame pixels.

MoveNet single pose (Lightning, Thunder) gives one output [1, 1, 17, 3]: each keypoint's (y, x, score), y and x
normalised to the model's input; the pose's score is the mean of its keypoints'. MoveNet multipose gives
[1, N, 56]: per person the 17 keypoints' (y, x, score), then its box (ymin, xmin, ymax, xmax) and its score.
The frame's geometry maps the input's points onto the source frame (stretch, letterbox or crop); a point the
model puts where the input shows no frame (letterbox padding) is clipped to the frame's edge. `poses` scoring
below `min_score` are dropped, the best `max_results` kept, best first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from app.frame import Frame, InputGeometry
from app.model.kinds.base import Decoder, Kind
from app.model.runtime import LoadedModel, TensorSpec

if TYPE_CHECKING:
    from app.config import PostprocessParams
    from app.model.manifest import Labels

#: the result key (`Frame.kind_results`, `Frame.result`)
POSES = "poses"
#: MoveNet's keypoints, in its output's order (COCO's)
KEYPOINT_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                  "right_knee", "left_ankle", "right_ankle")
#: a multipose row: the keypoints' (y, x, score), then the box's four values and the pose's score
MULTIPOSE_ROW = 3 * len(KEYPOINT_NAMES) + 5


def mismatch(outputs: Sequence[TensorSpec]) -> str | None:
    """None for one output of coordinates (float or quantised, not plain integers): single pose [1, 1, 17, 3] or
    multipose [1, N, 56]."""
    if len(outputs) == 1:
        (output,) = outputs
        shape = output.shape
        coordinates = bool(output.scale) or np.issubdtype(output.dtype, np.floating)
        single = shape == (1, 1, len(KEYPOINT_NAMES), 3)
        multi = len(shape) == 3 and shape[0] == 1 and shape[2] == MULTIPOSE_ROW
        if coordinates and (single or multi):
            return None
    return ("a pose model has one output of coordinates (float or quantised): MoveNet single pose [1, 1, 17, 3] or "
            "multipose [1, N, 56]")


@dataclass(frozen=True)
class Pose:
    """One person: its score and its keypoints [17, 3] as (x, y, score), x and y in source pixels."""

    score: float
    keypoints: np.ndarray

    def as_json(self) -> dict:
        return {"score": round(self.score, 4),
                "keypoints": [{"name": name, "x": round(x, 1), "y": round(y, 1), "score": round(score, 4)}
                              for name, (x, y, score) in zip(KEYPOINT_NAMES, self.keypoints.tolist(), strict=True)]}


@dataclass(frozen=True)
class Poses:
    """A frame's poses, best first."""

    poses: list[Pose]

    def as_json(self) -> list[dict]:
        return [pose.as_json() for pose in self.poses]


def rows_of(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A dequantised output (batch dropped) as keypoints [n, 17, 3] (y, x, score, normalised) and pose scores [n]:
    a single pose's is the mean of its keypoints' scores."""
    if values.shape[-1] == 3:
        keypoints = values.reshape(1, len(KEYPOINT_NAMES), 3)
        return keypoints, keypoints[:, :, 2].mean(axis=1)
    return values[:, :3 * len(KEYPOINT_NAMES)].reshape(-1, len(KEYPOINT_NAMES), 3), values[:, -1]


def decode_poses(keypoints: np.ndarray, scores: np.ndarray, geometry: InputGeometry, min_score: float,
                 max_results: int) -> list[Pose]:
    """Poses scoring at least `min_score`, best first, their keypoints mapped to source pixels (a point is a box
    of no size to the geometry)."""
    keep = np.flatnonzero(scores >= min_score)
    keep = keep[np.argsort(-scores[keep], kind="stable")][:max_results]
    poses = []
    for i in keep:
        y, x, score = keypoints[i].T
        source = geometry.boxes_to_source(np.stack([x, y, x, y], axis=1))
        poses.append(Pose(float(scores[i]), np.stack([source[:, 0], source[:, 1], score], axis=1)))
    return poses


def build(params: PostprocessParams, model: LoadedModel, labels: Labels) -> Decoder:
    (output,) = model.outputs

    def decode(frame: Frame) -> None:
        assert frame.geometry is not None
        keypoints, scores = rows_of(output.dequantize(model.output(output))[0])
        frame.kind_results[POSES] = Poses(decode_poses(keypoints, scores, frame.geometry, params.min_score,
                                                       params.max_results))
    return decode


KIND = Kind("pose", POSES, mismatch, build)
