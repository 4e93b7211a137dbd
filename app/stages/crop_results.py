"""What a kind's result on a crop becomes on its detection: its attributes, under a key the kind gives.

The crop stage runs any kind whose result is one thing per crop (a pose, segments, an embedding: a result of
`Frame.kind_results`, keyed by what the kind produces); boxes and classes of a crop are refused. On a detection, a
pose is its `keypoints` (the crop's one person: name, x, y, score in source pixels); an embedding is nothing (the
crop stage keeps the vector, and the teach step puts a taught `name` on the detection); a kind not named in
ON_A_DETECTION puts its result's JSON under its result key. A kind that finds nothing on a crop (no pose) gives no
attribute.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.errors import ConfigError
from app.frame import Frame, KindResult
from app.model.kinds.base import CLASSES, DETECTIONS, Kind
from app.model.kinds.pose import Poses

#: a crop's frame, decoded, as its detection's attributes
Attributes = Callable[[Frame], dict[str, Any]]


def _keypoints(result: KindResult) -> dict[str, Any]:
    """The crop's best pose's keypoints."""
    assert isinstance(result, Poses)
    return {"keypoints": result.poses[0].as_json()["keypoints"]} if result.poses else {}


#: kind name -> its result as a detection's attributes (the kinds whose key is not their result key)
ON_A_DETECTION: dict[str, Callable[[KindResult], dict[str, Any]]] = {"pose": _keypoints,
                                                                     "embedding": lambda result: {}}


def on_a_detection(kind: Kind) -> Attributes:
    """How the crop's frame, once `kind` decoded it, gives the detection's attributes; ConfigError for a kind
    that gives boxes or classes."""
    if kind.produces in (DETECTIONS, CLASSES):
        raise ConfigError(f"stages.crop.model: a {kind.name} gives {kind.produces}, not one result per crop: the "
                          f"crop stage runs a kind such as pose")
    convert = ON_A_DETECTION.get(kind.name)

    def attributes(frame: Frame) -> dict[str, Any]:
        result = frame.kind_results.get(kind.produces)
        if result is None:
            return {}
        return convert(result) if convert is not None else {kind.produces: result.as_json()}
    return attributes
