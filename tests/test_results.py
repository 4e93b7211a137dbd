"""The one JSON shape of a processed frame: unchanged byte for byte for boxes and classes, and open to what the
next kinds produce (a kind's result under its key, a detection's attributes under theirs) without a new field."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from app.frame import Classification, Detection, Frame

#: what `Frame.result` gave for this frame before kinds had a result slot (main 59af459)
BEFORE = (
    '{"pipeline": "detect", "source": "cam0", "seq": 42, "ts": 1764140000.123456, "stamp": {"monotonic_ns": '
    '1000500000000, "source": "arrival"}, "size": [1280, 720], "detections": [{"label": "person", "class_id": 0, '
    '"score": 0.8765, "box": [10.0, 20.1, 300.0, 400.6]}, {"label": "cat", "class_id": 17, "score": 0.5, "box": '
    '[1.0, 2.0, 3.0, 4.0], "track_id": 7, "zones": ["door"]}], "classes": [{"label": "Egyptian cat", "class_id": '
    '286, "score": 0.9123}], "timing_ms": {"preprocess": 1.23, "inference": 7.0}}')


def frame(*, attributes: dict | None = None) -> Frame:
    out = Frame(np.zeros((720, 1280, 3), np.uint8), 42, "cam0", t_capture=1000.5, ts=1764140000.123456)
    out.detections = [Detection("person", 0, 0.87654, (10.04, 20.06, 300.0, 400.55), attributes=attributes or {}),
                      Detection("cat", 17, 0.5, (1.0, 2.0, 3.0, 4.0), 7, ("door",))]
    out.classes = [Classification("Egyptian cat", 286, 0.912345)]
    out.timing = {"preprocess": 1.234, "inference": 7.0}
    return out


@dataclass(frozen=True)
class Segments:
    """A segmentation-like result: compact JSON, and an array that stays out of it."""

    mask: np.ndarray

    def as_json(self) -> list[dict]:
        return [{"label": "person", "class_id": 15, "area": round(float(self.mask.mean()), 3)}]


def test_boxes_and_classes_give_the_same_json_as_before():
    assert json.dumps(frame().result("detect")) == BEFORE


def test_a_kind_result_goes_under_its_key_before_the_timing_and_its_array_stays_out():
    processed = frame()
    processed.kind_results["segments"] = Segments(np.ones((4, 4)))
    result = processed.result("detect")
    assert result["segments"] == [{"label": "person", "class_id": 15, "area": 1.0}]
    assert list(result)[-2:] == ["segments", "timing_ms"]
    assert json.loads(json.dumps(result)) == result


def test_a_detection_carries_its_attributes_under_their_keys():
    keypoints = [{"name": "nose", "x": 12.0, "y": 30.0, "score": 0.9}]
    result = frame(attributes={"name": "grace", "keypoints": keypoints}).result("detect")
    first = result["detections"][0]
    assert (first["name"], first["keypoints"]) == ("grace", keypoints)
    assert first["box"] == [10.0, 20.1, 300.0, 400.6]
    assert "name" not in result["detections"][1]


def test_a_detection_with_attributes_can_still_be_hashed_and_compared():
    """Frozen detections are compared by value (the tracker's tests do); the attributes take part."""
    plain = Detection("cat", 17, 0.5, (1.0, 2.0, 3.0, 4.0))
    named = Detection("cat", 17, 0.5, (1.0, 2.0, 3.0, 4.0), attributes={"name": "tom"})
    assert hash(plain) == hash(named) and plain != named
