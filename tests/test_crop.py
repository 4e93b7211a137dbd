"""The crop stage with the real models: MoveNet on YOLOv8n's person crops gives the keypoints a direct MoveNet run on
the same crop gives, in source pixels; labels, min_size and max_per_frame choose the crops (the second model's runs
counted); with the track stage a steady track is run once and keeps its keypoints, a moved box is run again; the
second model is loaded as the first (accelerator and threads of its own, the missing-model line, `validate`, the
Edge TPU's CPU fallback), and its kind is checked."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.config import load_settings
from app.errors import ConfigError, ModelError
from app.model.accelerator import ModelChoice
from app.model.fit import validate_fit
from app.model.kinds.pose import KEYPOINT_NAMES
from app.pipeline import Pipeline
from app.stages import build_stages
from app.stages.crop import crop_region
from cascade import MOVENET, YOLO, Cascade, cascade_file
from conftest import IMAGES, Collector, FakeCamera, app, error_line, imread, run_model

#: every person of kite_and_cold.jpg through YOLOv8n at 0.4: (box, its shorter side), and its kites
PERSON_SIDES = (54, 54, 27, 11)
KITES = 3


def crop_and_run(image: np.ndarray, box: tuple[float, ...]) -> dict[str, tuple[float, float]]:
    """MoveNet run directly on the pixels of `box` (to whole pixels outwards), letterboxed, its keypoints moved to
    source pixels."""
    x0, y0, x1, y1 = math.floor(box[0]), math.floor(box[1]), math.ceil(box[2]), math.ceil(box[3])
    frame = run_model(MOVENET.name, np.ascontiguousarray(image[y0:y1, x0:x1]), preprocess={"resize": "letterbox"},
                      postprocess={"kind": "pose", "min_score": 0})
    (pose,) = frame.result("direct")["poses"]
    return {k["name"]: (k["x"] + x0, k["y"] + y0) for k in pose["keypoints"]}


def test_keypoints_on_grace_hoppers_person_agree_with_movenet_run_directly_on_that_crop(tmp_path):
    """Within 2 px, every keypoint the crop shows. One the model puts in the letterbox's padding is clipped by the
    direct run to the crop's edge, and by the stage to the frame's: there it lies between the two."""
    image = imread(IMAGES / "grace_hopper.bmp")
    frame = Cascade(tmp_path, {"labels": ["person"], "margin": 0}).frame(image)
    (person,) = [d for d in frame.detections if d.label == "person"]
    keypoints = person.as_dict()["keypoints"]
    assert [set(k) for k in keypoints] == [{"name", "x", "y", "score"}] * 17
    direct = crop_and_run(image, person.box)
    x0, x1 = math.floor(person.box[0]), math.ceil(person.box[2])
    shown = 0
    for point in keypoints:
        x, y = direct[point["name"]]
        if x in (x0, x1):  # in the padding left or right of the crop
            assert (0 <= point["x"] <= x0 + 2) if x == x0 else (x1 - 2 <= point["x"] <= image.shape[1]), point
        else:
            assert abs(point["x"] - x) <= 2 and abs(point["y"] - y) <= 2, (point, x, y)
            shown += 1
    assert shown >= 15
    nose = next(point for point in keypoints if point["name"] == "nose")
    assert abs(nose["x"] - 268) < 10 and abs(nose["y"] - 226) < 10  # shared/README's, on the whole frame
    assert all("keypoints" not in d.attributes for d in frame.detections if d.label != "person")  # a tie


@pytest.mark.parametrize("crop, runs", [
    ({"labels": ["person"], "min_size": 1, "max_per_frame": 10}, len(PERSON_SIDES)),
    ({"labels": ["kite"], "min_size": 1, "max_per_frame": 10}, KITES),
    ({"labels": ["person"], "min_size": 30, "max_per_frame": 10}, 2),
    ({"labels": ["person"], "min_size": 1, "max_per_frame": 1}, 1),
], ids=["labels", "other-labels", "min_size", "max_per_frame"])
def test_labels_min_size_and_max_per_frame_choose_the_crops(tmp_path, crop, runs):
    """kite_and_cold.jpg: 4 persons (shorter sides 54, 54, 27, 11 px) and 3 kites. Without the track stage, every
    frame runs every crop chosen again."""
    cascade = Cascade(tmp_path, crop)
    image = imread(IMAGES / "kite_and_cold.jpg")
    frame = cascade.frame(image)
    assert cascade.invocations == runs
    posed = [d for d in frame.detections if "keypoints" in d.attributes]
    assert len(posed) == runs
    assert all(d.label in crop["labels"] and min(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= crop["min_size"]
               for d in posed)
    if crop["max_per_frame"] == 1:  # the largest person
        persons = [d for d in frame.detections if d.label == "person"]
        largest = max(persons, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        assert posed == [largest]
    cascade.frame(image)
    assert cascade.invocations == 2 * runs


@pytest.mark.parametrize("box, margin, region", [
    ((1.5, 10.0, 2.5, 20.0), 0.0, (1, 10, 3, 20)),  # a 1-pixel box takes whole pixels outwards, never none
    ((10.0, 10.0, 30.0, 50.0), 0.1, (8, 6, 32, 54)),
    ((2.0, 3.0, 98.0, 50.0), 0.1, (0, 0, 100, 55)),  # cut at the frame's edges
])
def test_a_crop_is_the_box_grown_by_its_margin_in_whole_pixels_within_the_frame(box, margin, region):
    assert crop_region(box, margin, (100, 60)) == region


def on_canvas(image: np.ndarray, x: int, y: int) -> np.ndarray:
    canvas = np.full((720, 720, 3), 128, np.uint8)
    canvas[y:y + image.shape[0], x:x + image.shape[1]] = image
    return canvas


def test_a_steady_track_is_run_once_and_keeps_its_keypoints_and_a_moved_one_is_run_again(tmp_path):
    """grace_hopper.bmp on a grey canvas: a tentative track is not run; confirmed, it is run once and keeps its
    keypoints while its box stays; moved 60 px right and down (box IoU about 0.65 < 0.7) the same track is run
    again and its keypoints follow; when the track ends its result is forgotten."""
    cascade = Cascade(tmp_path, {"labels": ["person"]}, track={"min_hits": 2, "max_lost": 1, "smooth": False})
    grace = imread(IMAGES / "grace_hopper.bmp")
    first = cascade.frame(on_canvas(grace, 0, 0), 0.0)
    assert cascade.invocations == 0 and all(d.track_id is None for d in first.detections)
    frames = [cascade.frame(on_canvas(grace, 0, 0), t) for t in (0.1, 0.2, 0.3)]
    assert cascade.invocations == 1
    people = [next(d for d in frame.detections if d.label == "person") for frame in frames]
    assert len({d.track_id for d in people}) == 1
    assert people[0].attributes["keypoints"] == people[2].attributes["keypoints"]
    moved = [next(d for d in cascade.frame(on_canvas(grace, 60, 60), t).detections if d.label == "person")
             for t in (0.4, 0.5)]
    assert cascade.invocations == 2 and moved[0].track_id == people[0].track_id
    nose_before, nose_after = (next(k for k in d.attributes["keypoints"] if k["name"] == "nose")
                               for d in (people[2], moved[1]))
    assert abs(nose_after["x"] - nose_before["x"] - 60) < 10 and abs(nose_after["y"] - nose_before["y"] - 60) < 10
    for t in (0.6, 0.7, 0.8):
        cascade.frame(np.full((720, 720, 3), 128, np.uint8), t)
    assert cascade.crop._kept == {}


def test_a_track_the_detector_missed_is_not_run_at_its_predicted_box_and_keeps_its_keypoints(tmp_path):
    """track.coast: grace_hopper.bmp moves right on a grey canvas for two frames (each run: changed_iou 1), then
    the canvas is empty and the tracker hands her track on at its predicted box (`coasted`), further right: no
    model drew that box, so MoveNet is not run on it; the track keeps its last keypoints."""
    cascade = Cascade(tmp_path, {"labels": ["person"], "changed_iou": 1.0}, track={"min_hits": 1, "coast": 2})
    grace = imread(IMAGES / "grace_hopper.bmp")
    seen = [next(d for d in cascade.frame(on_canvas(grace, x, 0), t).detections if d.label == "person")
            for t, x in ((0.0, 0), (0.1, 40))]
    assert cascade.invocations == 2
    (coasted,) = [d for d in cascade.frame(on_canvas(grace[:0], 0, 0), 0.2).detections
                  if d.track_id == seen[1].track_id]
    assert coasted.attributes["coasted"] == 1 and coasted.box[0] > seen[1].box[0]
    assert cascade.invocations == 2 and coasted.attributes["keypoints"] == seen[1].attributes["keypoints"]


def test_the_second_model_has_its_own_accelerator_and_threads(tmp_path):
    cascade = Cascade(tmp_path, {"accelerator": "cpu", "threads": 1})
    assert cascade.crop.runner is not None
    assert (cascade.crop.runner.choice.accelerator, cascade.crop.runner.model.threads) == ("cpu", 1)


def test_a_missing_second_model_is_the_first_models_line_at_start_and_in_validate(tmp_path):
    """The crop's model named but not downloaded: the run and `validate` say the one line with the command."""
    path = cascade_file(tmp_path, {"model": "movenet_single_pose_lightning_ptq"})
    settings = load_settings(str(path), None, [f"models.dir={tmp_path}"])
    with pytest.raises(ConfigError) as refused:
        build_stages(settings)
    expected = "model movenet_single_pose_lightning_ptq is not downloaded: "
    assert str(refused.value).startswith(expected) and "models pull movenet_single_pose_lightning_ptq" in str(
        refused.value)
    line = error_line(app("validate", "--pipeline", path, "--set", f"models.dir={tmp_path}"), 2)
    assert line.startswith(f"error: {expected}") and line.endswith("models pull movenet_single_pose_lightning_ptq")


def test_the_second_models_kind_is_checked_and_gives_one_result_per_crop(tmp_path):
    """A declared kind its outputs do not fit is the kinds' one line, named for this stage; a detector on a crop
    is refused; unknown parameters are errors naming their path."""
    with pytest.raises(ConfigError, match=r"^stages\.crop\.kind: movenet_single_pose_lightning_ptq\.tflite is not "
                                          r"segmentation .*it looks like pose"):
        Cascade(tmp_path, {"kind": "segmentation"})
    with pytest.raises(ConfigError, match=r"^stages\.crop\.model: a yolo gives detections, not one result per crop"):
        Cascade(tmp_path, {"model": str(YOLO), "kind": "yolo"})
    with pytest.raises(ConfigError, match=r"stages\.crop\.size"):
        load_settings(str(cascade_file(tmp_path, {"size": 3})), None, [])


def test_the_second_model_falls_back_to_the_cpu_as_the_first_does(tmp_path):
    """The second model's Edge TPU fails mid-run (its invoke raises): the runner's CPU model takes over, the
    stage starts again on it, and the crop is run there: the frame still gets its keypoints."""
    cascade = Cascade(tmp_path, {"labels": ["person"]})
    runner = cascade.crop.runner
    assert runner is not None
    runner.choice = ModelChoice(MOVENET, "edgetpu", "a test", fallback=MOVENET)
    failing = runner.model

    def unplugged() -> None:
        raise ModelError("the Edge TPU went away")
    failing.invoke = unplugged  # type: ignore[method-assign]
    frame = cascade.frame(imread(IMAGES / "grace_hopper.bmp"))
    assert runner.model is not failing and runner.choice.accelerator == "cpu"
    assert "keypoints" in next(d for d in frame.detections if d.label == "person").attributes



def test_a_reload_keeps_the_tracks_results_unless_the_second_model_changes(tmp_path):
    cascade = Cascade(tmp_path, {"labels": ["person"]}, track={"min_hits": 1})
    cascade.frame(imread(IMAGES / "grace_hopper.bmp"))
    crop, context = cascade.crop, cascade.crop._ctx
    runner, kept = crop.runner, dict(crop._kept)
    assert len(kept) == 1
    crop.reconfigure(crop.params.model_copy(update={"max_per_frame": 2}), context)
    assert (crop.runner, crop._kept) == (runner, kept)
    crop.reconfigure(crop.params.model_copy(update={"threads": 1}), context)
    assert crop.runner is not runner and crop.runner is not None and crop.runner.model.threads == 1
    assert crop._kept == {}


def test_crop_labels_need_a_detector_and_person_down_needs_the_track_stage(tmp_path):
    """MoveNet as the first model gives no boxes to crop: `stages.crop.labels` is the fit check's error, as
    `filter.labels` is; a crop label the detector lacks is its warning; person_down without track is one line."""
    path = cascade_file(tmp_path, {"labels": ["person"]})
    settings = load_settings(str(path), None, [f"stages.inference.model={MOVENET}", "stages.inference.labels=null",
                                               "stages.postprocess.kind=pose"])
    with pytest.raises(ConfigError, match=r"stages\.crop\.labels: work on detections, but "
                                          r"movenet_single_pose_lightning_ptq\.tflite is a pose"):
        validate_fit(settings)
    warnings = validate_fit(load_settings(str(cascade_file(tmp_path, {"labels": ["unicorn"]})), None, []))
    assert any("stages.crop.labels: unicorn is not among the labels" in warning for warning in warnings), warnings
    with pytest.raises(ConfigError, match=r"cascade\.yaml: stages\.crop\.person_down: watches tracked persons: "
                                          r"add a track stage before crop"):
        load_settings(str(cascade_file(tmp_path, {"person_down": {}})), None, [])
    line = error_line(app("validate", "--pipeline", cascade_file(tmp_path, {"person_down": {}})), 2)
    assert line.endswith("stages.crop.person_down: watches tracked persons: add a track stage before crop")


def test_a_camera_runs_the_crop_stage_and_its_results_carry_the_keypoints(tmp_path):
    """A whole run (Pipeline: capture, inference and output lanes) of two frames of grace_hopper.bmp: the result
    document's person carries its 17 keypoints."""
    collect = Collector()
    settings = load_settings(str(cascade_file(tmp_path, {"labels": ["person"]})), None, [])
    grace = imread(IMAGES / "grace_hopper.bmp")
    Pipeline(settings, [collect], source=FakeCamera([grace, grace], live=False)).run()
    assert len(collect.results) == 2
    for result in collect.results:
        (person,) = [d for d in result["detections"] if d["label"] == "person"]
        assert [k["name"] for k in person["keypoints"]] == list(KEYPOINT_NAMES)
