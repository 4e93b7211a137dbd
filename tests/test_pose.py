"""The pose kind with the real MoveNet Lightning on real images: the known keypoints in source pixels, the same
answer letterboxed or stretched, the `poses` JSON and min_score; multipose's decoder on a synthetic [1, 6, 56]
tensor (no multipose model is shared); and the kind refusing other models' tensors while the others refuse its."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
import pytest

from app.config import PostprocessParams
from app.errors import ConfigError
from app.frame import Frame, InputGeometry
from app.model.kinds import KINDS
from app.model.kinds.choose import choose_kind
from app.model.kinds.pose import KEYPOINT_NAMES, Poses
from app.model.manifest import Labels
from app.model.runtime import LoadedModel, TensorSpec, load_model
from conftest import MODELS, run_model

MOVENET = "movenet_single_pose_lightning_ptq.tflite"
#: shared/README: BlazeFace's face on grace_hopper.bmp, letterboxed (x0, y0, x1, y1)
FACE = (169, 142, 366, 338)


def keypoints(image: str, resize: str) -> dict[str, dict]:
    """The one pose's keypoints by name (min_score 0: every pose kept)."""
    frame = run_model(MOVENET, image, preprocess={"resize": resize}, postprocess={"kind": "pose", "min_score": 0})
    (pose,) = frame.result("pose")["poses"]
    return {keypoint["name"]: keypoint for keypoint in pose["keypoints"]}


def described(name: str, shape: tuple[int, ...], dtype: type, scale: float = 0.0) -> LoadedModel:
    """A model as the kinds see it at start: its file name and its one output tensor."""
    return cast(LoadedModel, SimpleNamespace(path=Path(name), outputs=[TensorSpec(0, "out", shape, dtype, scale, 0)]))


def test_grace_hoppers_keypoints_are_the_known_answers_on_her_face_and_shoulders():
    """shared/README's MoveNet answers (letterboxed to 192): nose, eyes and shoulders in image pixels; the nose
    and eyes inside BlazeFace's face box, the nose above both shoulders."""
    found = keypoints("grace_hopper.bmp", "letterbox")
    assert list(found) == list(KEYPOINT_NAMES)
    known = {"nose": (268, 226), "right_eye": (224, 192), "left_eye": (308, 189), "right_shoulder": (77, 425),
             "left_shoulder": (453, 433)}
    for name, (x, y) in known.items():
        assert found[name]["x"] == pytest.approx(x, abs=3) and found[name]["y"] == pytest.approx(y, abs=3), name
    for name in ("nose", "left_eye", "right_eye"):
        assert FACE[0] < found[name]["x"] < FACE[2] and FACE[1] < found[name]["y"] < FACE[3], name
    assert found["nose"]["y"] < min(found["left_shoulder"]["y"], found["right_shoulder"]["y"])
    assert found["right_eye"]["x"] < found["nose"]["x"] < found["left_eye"]["x"]  # she faces the camera


def test_letterbox_and_stretch_agree_in_source_pixels():
    """The two inputs differ, so the model's answers do a little; the letterbox's padding is 44 source pixels
    each side, so an answer left in input coordinates would be far off."""
    letterboxed, stretched = keypoints("grace_hopper.bmp", "letterbox"), keypoints("grace_hopper.bmp", "stretch")
    for name in ("nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder"):
        (x0, y0), (x1, y1) = ((found[name]["x"], found[name]["y"]) for found in (letterboxed, stretched))
        distance = np.hypot(x1 - x0, y1 - y0)
        assert distance < 12, (name, distance)


def test_the_json_is_the_poses_list_and_a_single_poses_score_is_its_keypoints_mean():
    frame = run_model(MOVENET, "squat.bmp", preprocess={"resize": "letterbox"}, postprocess={"kind": "pose"})
    result = frame.result("pose")
    assert json.loads(json.dumps(result)) == result
    (pose,) = result["poses"]
    assert set(pose) == {"score", "keypoints"} and len(pose["keypoints"]) == 17
    assert all(set(keypoint) == {"name", "x", "y", "score"} for keypoint in pose["keypoints"])
    assert pose["score"] == pytest.approx(np.mean([keypoint["score"] for keypoint in pose["keypoints"]]), abs=1e-4)
    assert all(0 <= k["x"] <= 500 and 0 <= k["y"] <= 610 for k in pose["keypoints"])  # squat.bmp is 500 x 610


def test_min_score_drops_a_pose_scoring_below_it():
    """Grace Hopper's pose scores about 0.27: most of her body is out of the picture."""
    for min_score, count in ((0.25, 1), (0.3, 0)):
        frame = run_model(MOVENET, "grace_hopper.bmp", preprocess={"resize": "letterbox"},
                          postprocess={"kind": "pose", "min_score": min_score})
        assert len(frame.result("pose")["poses"]) == count, min_score


def multipose_row(y: float, x: float, keypoint_score: float, score: float) -> np.ndarray:
    """A synthetic multipose row: every keypoint at (y, x) but the nose, 0.1 above; a box; the pose's score."""
    points = np.tile([y, x, keypoint_score], (17, 1))
    points[0, 0] = y - 0.1
    return np.concatenate([points.ravel(), [0.1, 0.2, 0.9, 0.8, score]]).astype(np.float32)


def test_the_multipose_decoder_reads_each_person_on_a_synthetic_tensor():
    """[1, 6, 56]: three persons at 0.9, 0.6 and 0.2, three empty rows; a 640 x 480 frame letterboxed to a square
    input (80 source pixels of padding above and below)."""
    output = np.zeros((1, 6, 56), np.float32)
    output[0, 1] = multipose_row(0.5, 0.25, 0.7, 0.6)
    output[0, 3] = multipose_row(0.25, 0.5, 0.8, 0.9)
    output[0, 4] = multipose_row(0.05, 0.75, 0.3, 0.2)  # its nose at y -0.05: above the input
    model = described("multipose.tflite", (1, 6, 56), np.float32)
    cast(SimpleNamespace, model).output = lambda spec: output
    frame = Frame(np.zeros((480, 640, 3), np.uint8), 1, "test")
    frame.geometry = InputGeometry(640, 480, 640.0, 640.0, 0.0, -80.0)

    def poses(min_score: float, max_results: int = 20) -> list[dict]:
        params = PostprocessParams(kind="pose", min_score=min_score, max_results=max_results)
        KINDS["pose"].build(params, model, Labels())(frame)
        found = frame.kind_results["poses"]
        assert isinstance(found, Poses)
        return found.as_json()

    best, second = poses(min_score=0.5)
    assert (best["score"], second["score"]) == (0.9, 0.6)
    assert [k["name"] for k in best["keypoints"]] == list(KEYPOINT_NAMES)
    assert (best["keypoints"][1]["x"], best["keypoints"][1]["y"]) == (320, 80)  # (0.5 x 640, 0.25 x 640 - 80)
    assert (best["keypoints"][0]["x"], best["keypoints"][0]["y"]) == (320, 16)
    assert (second["keypoints"][5]["x"], second["keypoints"][5]["y"], second["keypoints"][5]["score"]) == \
        (160, 240, 0.7)
    assert [pose["score"] for pose in poses(min_score=0.5, max_results=1)] == [0.9]
    (*_, third) = poses(min_score=0.1)
    assert third["score"] == 0.2 and third["keypoints"][0]["y"] == 0  # in the padding: at the frame's edge
    assert choose_kind("auto", model, Labels()).name == "pose"


def test_auto_takes_movenet_for_pose_by_its_tensors(tmp_path):
    renamed = tmp_path / "my_pose_model.tflite"  # a name the manifest does not know: the tensors decide
    shutil.copy(MODELS / MOVENET, renamed)
    assert choose_kind("auto", load_model(renamed), Labels()).name == "pose"


def test_an_integer_map_of_multiposes_shape_is_no_pose():
    """Plain integers cannot be normalised coordinates: [1, 6, 56] int64 is a class map, for segmentation."""
    class_map = described("class_map.tflite", (1, 6, 56), np.int64)
    with pytest.raises(ConfigError, match=r"is not pose .*; it looks like segmentation\)$"):
        choose_kind("pose", class_map, Labels())
    assert choose_kind("auto", class_map, Labels()).name == "segmentation"
    assert choose_kind("pose", described("quantised.tflite", (1, 6, 56), np.uint8, 0.004), Labels()).name == "pose"
