"""MJPEG decoding at a reduced scale (`camera.decode_scale`): the factor `auto` picks, the decode itself on real JPEG
data, V4L2Source's read path against a stand-in for cv2.VideoCapture (no camera exists here: it is the hardware
boundary), and the pet SSD still finding the cat, in the decoded frame's pixels, at half scale."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from app.config import CameraConfig, DeviceConfig, load_settings
from app.frame import BGR
from app.pipeline import Pipeline
from app.sources import opencv
from app.sources.mjpeg import decode_jpeg, decode_scale
from app.sources.opencv import MAX_UNDECODABLE
from conftest import CAT_BREEDS, IMAGES, PET, Background, Collector, imread, iou, opened_v4l2, run_model, wait_for
from conftest import decode_jpeg as decode_whole

PET_SSD = "ssd_mobilenet_v1_fine_tuned_pet.tflite"
CAT = imread(IMAGES / "cat_720p.jpg")
#: the cat as a USB camera sends it: one JPEG, made at run time (no media is committed)
CAT_JPEG = cv2.imencode(".jpg", CAT, [cv2.IMWRITE_JPEG_QUALITY, 80])[1]
#: bytes that are no JPEG: a frame cut short on the USB bus
CUT_SHORT = CAT_JPEG[: CAT_JPEG.size // 2]
#: CAT_JPEG decoded whole, as OpenCV's V4L2 backend does
CAT_WHOLE = decode_whole(CAT_JPEG.tobytes())


def device(model: dict | None = None, **sections: dict) -> DeviceConfig:
    """config.yaml with the camera settings `model` (default: 1280x720) and the other sections given."""
    return DeviceConfig.model_validate({"camera": model or {}, **sections})


def mean_difference(image: np.ndarray, full: np.ndarray) -> float:
    """Mean absolute difference, per channel value, between `image` and `full` resized to its size."""
    expected = cv2.resize(full, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
    return float(np.abs(image.astype(np.int16) - expected).mean())


# --- decode_scale: the factor auto picks


@pytest.mark.parametrize(("camera", "model_size", "sections", "expected"), [
    ({}, (300, 300), {}, 2),  # 720 / 2 = 360 covers 300; 720 / 4 = 180 does not
    ({"width": 1920, "height": 1080}, (300, 300), {}, 2),  # 1080 / 4 = 270 < 300
    ({}, (128, 128), {}, 4),  # 720 / 4 = 180 covers 128; 720 / 8 = 90 does not
    ({}, (320, 240), {}, 2),  # the model's larger side counts, on both of the frame's sides
    ({"width": 640, "height": 480}, (640, 640), {}, 1),  # a frame smaller than the model: decoded whole
    ({}, (300, 300), {"http": {"enabled": True}}, 1),  # the stream at the source's size
    ({}, (300, 300), {"http": {"enabled": True, "stream": {"width": 640}}}, 2),  # 1280 / 2 = 640 wide enough
    ({}, (300, 300), {"http": {"enabled": True, "stream": {"width": 800}}}, 1),  # 640 is not
    ({}, (128, 128), {"http": {"enabled": False, "stream": {"width": 0}}}, 4),  # the stream is off: no need
    ({}, (300, 300), {"snapshots": {"enabled": True}}, 1),
    ({}, (300, 300), {"mqtt": {"enabled": True}}, 1),  # publishes snapshot images
])
def test_auto_picks_the_largest_factor_the_model_and_the_outputs_allow(camera, model_size, sections, expected):
    assert decode_scale(device(camera, **sections), model_size) == expected


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_a_factor_given_is_used_as_given(scale):
    assert decode_scale(device({"decode_scale": scale}), (300, 300)) == scale
    assert decode_scale(device({"decode_scale": scale}, snapshots={"enabled": True}), (300, 300)) == scale


def test_decode_scale_is_auto_or_a_factor_libjpeg_has():
    assert CameraConfig().decode_scale == "auto"
    for wrong in (3, 16, "half"):
        with pytest.raises(ValueError, match="decode_scale"):
            CameraConfig.model_validate({"decode_scale": wrong})


# --- decode_jpeg on real JPEG data


@pytest.mark.parametrize(("scale", "size"), [(1, (720, 1280)), (2, (360, 640)), (4, (180, 320)), (8, (90, 160))])
def test_decode_jpeg_gives_the_reduced_frame_bgr(scale, size):
    image = decode_jpeg(CAT_JPEG, scale)
    assert image.shape == (*size, 3) and image.dtype == np.uint8
    # the same picture, in BGR: the channels swapped would be far off
    assert mean_difference(image, CAT_WHOLE) < 2 < 20 < mean_difference(image[..., ::-1], CAT_WHOLE)


@pytest.mark.parametrize("bad", [CUT_SHORT, np.frombuffer(b"not a jpeg " * 100, np.uint8), np.zeros(0, np.uint8)],
                         ids=["cut short", "not a jpeg", "empty"])
def test_a_frame_that_does_not_decode_is_an_oserror(bad):
    with pytest.raises(OSError, match=f"a {bad.size}-byte frame does not decode as a JPEG"):
        decode_jpeg(bad, 2)


# --- V4L2Source against a stand-in for cv2.VideoCapture


class FakeCapture:
    """cv2.VideoCapture's V4L2 backend as an MJPEG camera drives it: with CAP_PROP_CONVERT_RGB on (the default)
    `read()` gives the decoded BGR frame; off, the JPEG as it came, 1 x N bytes. Shows `frames` (JPEGs) round and
    round, at most 100 a second. `gives` is the pixel format the camera settles on whatever is asked;
    `honours_convert=False` is a driver that decodes anyway."""

    frames: list[np.ndarray] = [CAT_JPEG]
    gives = "MJPG"
    honours_convert = True
    opened: list[FakeCapture] = []

    def __init__(self, target: str, api: int, params: list[int]) -> None:
        assert api == cv2.CAP_V4L2
        self.props: dict[int, float] = {cv2.CAP_PROP_CONVERT_RGB: 1, cv2.CAP_PROP_FPS: 30,
                                        cv2.CAP_PROP_FOURCC: cv2.VideoWriter.fourcc(*self.gives)}
        self.reads = 0
        FakeCapture.opened.append(self)

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return True

    def set(self, prop: int, value: float) -> bool:
        if prop == cv2.CAP_PROP_FOURCC or prop == cv2.CAP_PROP_CONVERT_RGB and not self.honours_convert:
            return False
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray]:
        time.sleep(0.01)
        jpeg = self.frames[self.reads % len(self.frames)]
        self.reads += 1
        if self.props[cv2.CAP_PROP_CONVERT_RGB]:
            return True, decode_whole(jpeg.tobytes())
        return True, jpeg.reshape(1, -1)

    def release(self) -> None:
        pass


@pytest.fixture
def capture(monkeypatch) -> Iterator[type[FakeCapture]]:
    """cv2.VideoCapture replaced by FakeCapture (set its class attributes to change the camera)."""
    monkeypatch.setattr(opencv.cv2, "VideoCapture", FakeCapture)
    monkeypatch.setattr(FakeCapture, "opened", [])
    yield FakeCapture


def test_an_mjpeg_camera_hands_over_its_jpegs_decoded_at_the_scale(capture, caplog):
    with caplog.at_level(logging.INFO, "app.sources.opencv"):
        source = opened_v4l2(fourcc="MJPG", decode_scale=2)
    assert capture.opened[0].props[cv2.CAP_PROP_CONVERT_RGB] == 0
    assert "/dev/video0: MJPEG decoded at 1/2: 640x360 (camera.decode_scale 2)" in caplog.text
    captured = source.read()
    assert captured.image.shape == (360, 640, 3) and captured.order == BGR
    assert mean_difference(captured.image, CAT_WHOLE) < 2
    assert source.decode_errors == 0


def test_a_frame_that_does_not_decode_is_skipped_and_counted(capture, monkeypatch, caplog):
    monkeypatch.setattr(capture, "frames", [CAT_JPEG, CUT_SHORT, CAT_JPEG])
    source = opened_v4l2(fourcc="MJPG", decode_scale=4)
    assert source.read().image.shape == (180, 320, 3)
    assert source.read().image.shape == (180, 320, 3)  # the next frame, not a reconnect
    assert source.decode_errors == 1 and capture.opened[0].reads == 3
    assert f"/dev/video0: a {CUT_SHORT.size}-byte frame does not decode as a JPEG; skipped (1 so far)" in caplog.text


def test_frames_that_never_decode_are_a_failed_camera(capture, monkeypatch):
    """A stream of garbage ends in OSError, so Reconnecting reopens the camera, and in bounded time (a read that
    never returned would also hold up the pipeline's stop)."""
    monkeypatch.setattr(capture, "frames", [CUT_SHORT])
    source = opened_v4l2(fourcc="MJPG", decode_scale=2)
    with pytest.raises(OSError, match=f"{MAX_UNDECODABLE} MJPEG frames in a row did not decode"):
        source.read()
    assert source.decode_errors == MAX_UNDECODABLE


@pytest.mark.parametrize("camera", [{"fourcc": "", "decode_scale": 2}, {"fourcc": "YUYV", "decode_scale": 2},
                                    {"fourcc": "MJPG", "decode_scale": 1}, {"fourcc": "MJPG"}],
                         ids=["no fourcc", "YUYV", "scale 1", "auto left unresolved"])
def test_otherwise_opencv_decodes_frames_whole(capture, camera):
    source = opened_v4l2(**camera)
    assert capture.opened[0].props[cv2.CAP_PROP_CONVERT_RGB] == 1
    assert source.read().image.shape == (720, 1280, 3)


def test_a_camera_that_gives_another_format_is_decoded_whole(capture, monkeypatch, caplog):
    """Asked for MJPG, it settled on YUYV: its raw frames would be no JPEGs, so OpenCV keeps decoding them."""
    monkeypatch.setattr(capture, "gives", "YUYV")
    source = opened_v4l2(fourcc="MJPG", decode_scale=2)
    assert capture.opened[0].props[cv2.CAP_PROP_CONVERT_RGB] == 1
    assert source.read().image.shape == (720, 1280, 3)
    assert "gives YUYV, not MJPG: camera.decode_scale does not apply" in caplog.text


def test_a_driver_that_decodes_anyway_gives_its_frames_as_they_are(capture, monkeypatch, caplog):
    monkeypatch.setattr(capture, "honours_convert", False)
    with caplog.at_level(logging.INFO, "app.sources.opencv"):
        source = opened_v4l2(fourcc="MJPG", decode_scale=2)
        frames = [source.read().image for _ in range(3)]
    assert all(frame.shape == (720, 1280, 3) for frame in frames) and source.decode_errors == 0
    assert caplog.text.count("frames come decoded") == 1


# --- the pipeline decides auto, and the model sees the decoded frame


def test_the_pet_ssd_finds_the_cat_at_half_scale_in_the_decoded_frames_pixels():
    full = run_model(PET_SSD, CAT, "pet_labels.txt").detections
    half = run_model(PET_SSD, decode_jpeg(CAT_JPEG, 2), "pet_labels.txt").detections
    assert full and half and half[0].label in CAT_BREEDS and half[0].score > 0.5
    assert max(half[0].box) <= 640
    assert iou([v * 2 for v in half[0].box], full[0].box) > 0.85


@pytest.mark.parametrize(("overrides", "size"), [([], [640, 360]), (["snapshots.enabled=true"], [1280, 720])],
                         ids=["auto: 1/2", "snapshots: whole"])
def test_the_pipeline_decides_auto_for_its_model_and_outputs(capture, tmp_path, overrides, size):
    settings = load_settings("detect", None, [*PET, "camera.source=/dev/video0", "camera.fourcc=MJPG",
                                              f"snapshots.dir={tmp_path}", *overrides])
    collector = Collector()
    with Background(Pipeline(settings, [collector])):
        wait_for(lambda: collector.count, "a processed frame")
    result = collector.results[0]
    assert result["size"] == size
    assert result["detections"][0]["label"] in CAT_BREEDS
