"""Pose's outputs with the real MoveNet Lightning on grace_hopper.bmp: the overlay draws COCO's skeleton at the
keypoints above its score threshold, for a pose model's poses and for the keypoints a detection carries (the crop
stage's), and the robot messages carry both (a `poses` message; `keypoints` on a Detection2D), valid by the
schema."""

from __future__ import annotations

import json
from dataclasses import replace

import jsonschema
import numpy as np
import pytest

from app.config import OverlayParams
from app.frame import Detection, Frame
from app.metrics import Stats
from app.model.kinds.pose import POSES, Poses
from app.outputs.overlay import draw, label_colour
from app.outputs.robot import client
from app.outputs.robot.base import RobotContext
from app.outputs.robot.message import Messages
from conftest import PROJECT, run_model

MOVENET = "movenet_single_pose_lightning_ptq.tflite"
VALIDATOR = jsonschema.Draft202012Validator(
    json.loads((PROJECT / "app" / "outputs" / "robot" / "detections.schema.json").read_text()))
#: only the skeletons drawn
POSES_ONLY = OverlayParams(boxes=False, banner=False, zones=False, segments=False)
#: the frame's stage times as the inference lane's end has them
TIMING = {"inference": 20.0, "exposure_to_result": 25.0}


@pytest.fixture(scope="module")
def grace() -> Frame:
    """grace_hopper.bmp through MoveNet (letterboxed): one pose, nose about (268, 226), shoulders (453, 433) and
    (77, 425)."""
    return run_model(MOVENET, "grace_hopper.bmp", preprocess={"resize": "letterbox"},
                     postprocess={"kind": "pose", "min_score": 0})


def keypoints(frame: Frame) -> list[dict]:
    poses = frame.kind_results[POSES]
    assert isinstance(poses, Poses)
    (pose,) = poses.as_json()
    return pose["keypoints"]


def changed(drawn: np.ndarray, frame: Frame) -> np.ndarray:
    return (drawn != frame.image).any(axis=2)


def assert_skeleton_at(drawn: np.ndarray, frame: Frame, points: list[dict], colour: tuple[int, int, int],
                       min_score: float) -> None:
    """A dot of `colour` (RGB; the frame is BGR) on each keypoint scoring at least `min_score`, the shoulders'
    limb drawn half way between them, and nothing below them all."""
    by_name = {k["name"]: k for k in points}
    sure = [k for k in points if k["score"] >= min_score]
    assert {"nose", "left_shoulder", "right_shoulder"} <= {k["name"] for k in sure}
    for k in sure:
        assert tuple(drawn[round(k["y"]), round(k["x"])]) == colour[::-1], k
    left, right = by_name["left_shoulder"], by_name["right_shoulder"]
    y, x = round((left["y"] + right["y"]) / 2), round((left["x"] + right["x"]) / 2)
    window = (slice(y - 1, y + 2), slice(x - 1, x + 2))  # an antialiased line 1 px wide: blended, not solid

    def nearest(image: np.ndarray) -> float:
        return float(np.abs(image[window].astype(int) - colour[::-1]).sum(axis=2).min())

    assert nearest(drawn) < nearest(frame.image) / 2
    assert not changed(drawn, frame)[560:, :].any()  # below every keypoint: untouched


def test_the_skeleton_is_drawn_at_the_keypoints_the_model_is_sure_of(grace):
    drawn = draw(grace, POSES_ONLY, 10.0)
    assert_skeleton_at(drawn, grace, keypoints(grace), label_colour("person"), POSES_ONLY.keypoint_min_score)
    unsure = [k for k in keypoints(grace) if k["score"] < POSES_ONLY.keypoint_min_score]
    assert unsure, "some keypoint (an ear, a hip) below the threshold"
    height, width = grace.image.shape[:2]
    for k in unsure:  # no dot where the model is unsure (a point off the picture is clipped to its edge)
        assert tuple(drawn[min(round(k["y"]), height - 1), min(round(k["x"]), width - 1)]) != \
            label_colour("person")[::-1], k
    for off in ({"poses": False}, {"keypoint_min_score": 1.0}):
        np.testing.assert_array_equal(draw(grace, POSES_ONLY.model_copy(update=off), 10.0), grace.image)


def test_a_detections_keypoints_are_drawn_in_its_labels_colour(grace):
    """The crop stage's keypoints (`attributes["keypoints"]`, in a pose's shape) on a detection, no pose model's."""
    person = Detection("pedestrian", 0, 0.9, (10.0, 22.0, 512.0, 600.0), attributes={"keypoints": keypoints(grace)})
    frame = replace(grace, kind_results={}, detections=[person])
    drawn = draw(frame, POSES_ONLY, 10.0)
    assert_skeleton_at(drawn, frame, keypoints(grace), label_colour("pedestrian"), POSES_ONLY.keypoint_min_score)


def test_the_robot_poses_message_carries_each_keypoint_in_source_pixels(grace):
    kind, payload = Messages(RobotContext("cam0", "pose", "cam0", {}, Stats()), 5.0).frame(
        replace(grace, timing=TIMING))
    message = json.loads(payload)
    VALIDATOR.validate(message)
    assert kind == message["type"] == "poses"
    assert message["poses"] == grace.kind_results[POSES].as_json()
    nose = message["poses"][0]["keypoints"][0]
    assert nose["name"] == "nose" and nose["x"] == pytest.approx(268, abs=3) and nose["y"] == pytest.approx(226, abs=3)
    assert " pose 0." in client.line(message)


def test_a_detections_keypoints_reach_the_robot_detections_message(grace):
    """The crop stage's keypoints, checked by the schema, and any other stage's attribute (teach's `name`) beside."""
    person = Detection("person", 0, 0.9, (10.0, 22.0, 512.0, 600.0),
                       attributes={"keypoints": keypoints(grace), "name": "grace"})
    frame = Frame(grace.image, 1, "cam0", detections=[person], timing=TIMING)
    kind, payload = Messages(RobotContext("cam0", "detect", "cam0", {0: "person"}, Stats()), 5.0).frame(frame)
    message = json.loads(payload)
    VALIDATOR.validate(message)
    assert kind == "detections" and message["detections"][0]["keypoints"] == keypoints(grace)
    assert message["detections"][0]["name"] == "grace"
    broken = json.loads(payload)
    broken["detections"][0]["keypoints"][0]["name"] = "tail"
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(broken)
