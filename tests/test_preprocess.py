"""Preprocess converts only the model-size image: a BGR frame (what OpenCV sources deliver) and its RGB twin give
the model the same input, in every resize mode and input encoding, and that input is the resized image in RGB."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.config import PreprocessParams
from app.frame import BGR, RGB, Frame
from app.model.manifest import Labels
from app.model.runtime import LoadedModel, load_model
from app.stages.base import StageContext
from app.stages.preprocess import Preprocess
from conftest import IMAGES, MODELS, imread

#: a uint8 model (the pet SSD) and a float32 one (BlazeFace, [-1, 1])
MODEL_FILES = ["ssd_mobilenet_v1_fine_tuned_pet.tflite", "face_detection_short_range.tflite"]
#: an int8 model (quantised from float_range through a lookup table)
INT8_MODEL = "yolov8n_full_integer_quant.tflite"


def model_input(model_file: str, resize: str, image: np.ndarray, order: str) -> np.ndarray:
    model = load_model(MODELS / model_file, threads=1)
    stage = Preprocess(PreprocessParams.model_validate({"resize": resize}))
    stage.start(StageContext(model, Labels()))
    stage.process(Frame(image, 1, "test", order))
    return model.input_buffer().copy()


@pytest.mark.parametrize("model_file", [*MODEL_FILES, INT8_MODEL])
@pytest.mark.parametrize("resize", ["stretch", "letterbox", "crop"])
def test_a_bgr_frame_and_its_rgb_twin_give_the_same_input(model_file, resize):
    bgr = imread(IMAGES / "cat_720p.jpg")
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    np.testing.assert_array_equal(model_input(model_file, resize, bgr, BGR), model_input(model_file, resize, rgb, RGB))


def test_the_input_is_the_resized_frame_in_rgb():
    bgr = imread(IMAGES / "cat_720p.jpg")
    expected = cv2.resize(bgr, (300, 300), interpolation=cv2.INTER_LINEAR)[..., ::-1]
    np.testing.assert_array_equal(model_input(MODEL_FILES[0], "stretch", bgr, BGR), expected)


def started(model_file: str, resize: str) -> tuple[Preprocess, LoadedModel]:
    model = load_model(MODELS / model_file, threads=1)
    stage = Preprocess(PreprocessParams.model_validate({"resize": resize}))
    stage.start(StageContext(model, Labels()))
    return stage, model


@pytest.mark.parametrize("resize", ["stretch", "letterbox", "crop"])
def test_a_frame_prepared_in_the_capture_lane_gives_the_same_input_and_geometry(resize):
    """`prepare` (the capture lane) fits the frame ahead; `process` then only writes it, to the same effect."""
    bgr = imread(IMAGES / "cat_720p.jpg")
    stage, model = started(MODEL_FILES[0], resize)
    unprepared = stage.process(Frame(bgr, 1, "test"))
    expected = model.input_buffer().copy()
    frame = Frame(bgr, 2, "test")
    stage.prepare(frame)
    assert frame.scaled is not None and frame.scaled.model_size == (300, 300)
    model.input_buffer()[...] = 0
    processed = stage.process(frame)
    np.testing.assert_array_equal(model.input_buffer(), expected)
    assert processed.geometry == unprepared.geometry
    assert processed.scaled is None  # the model-size copy is not carried to the outputs


def test_a_frame_prepared_for_another_model_is_fitted_again():
    """After the CPU fallback of an Edge TPU the model may differ: a frame prepared before is not trusted."""
    bgr = imread(IMAGES / "cat_720p.jpg")
    classifier, _ = started("mobilenet_v1_0.5_160_quant.tflite", "stretch")
    frame = Frame(bgr, 1, "test")
    classifier.prepare(frame)
    assert frame.scaled is not None and frame.scaled.pixels.shape == (160, 160, 3)
    detector, model = started(MODEL_FILES[0], "stretch")
    detector.process(frame)
    np.testing.assert_array_equal(model.input_buffer(), model_input(MODEL_FILES[0], "stretch", bgr, BGR))


@pytest.mark.parametrize(("model_file", "float_range", "grey"), [
    (INT8_MODEL, [0, 1], 114), (MODEL_FILES[0], [-1, 1], 0), (MODEL_FILES[1], [-1, 1], 0)])
def test_letterbox_padding_is_yolos_grey_for_yolo_and_black_for_the_others(model_file, float_range, grey):
    """Ultralytics trains and predicts with grey 114 padding; the other models (SSD, BlazeFace) keep black, each in
    its input's encoding (int8 quantised, uint8 as is, float scaled to the range)."""
    model = load_model(MODELS / model_file, threads=1)
    stage = Preprocess(PreprocessParams.model_validate({"resize": "letterbox", "float_range": float_range}))
    stage.start(StageContext(model, Labels()))
    stage.process(Frame(imread(IMAGES / "cat_720p.jpg"), 1, "test"))  # wider than square: padded above and below
    top_row = model.input_buffer()[0]
    spec = model.input
    low, high = float_range
    if spec.dtype == np.int8:
        expected = round(grey / 255 / spec.scale) + spec.zero_point
    else:
        expected = grey if spec.dtype == np.uint8 else low + grey * (high - low) / 255
    np.testing.assert_allclose(top_row, np.full_like(top_row, expected), atol=1e-6)
