"""Segmentation's outputs with the real DeepLab v3 on grace_hopper.bmp: the overlay tints the person and leaves the
background and what the model did not see as they were, `/api/mask.png` is the mask at source size (404 without a
segmentation, behind the same auth), the robot's `segments` message carries the areas and the mask as a PNG that
decodes to it, and the Python API's result gives the mask as an array."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import cv2
import jsonschema
import numpy as np
import pytest

from app.api import open_pipeline
from app.config import OverlayParams, load_settings
from app.frame import Frame
from app.metrics import Stats
from app.model.kinds.segmentation import SEGMENTS, UNSEEN, Segments
from app.outputs.base import Output, PublishContext
from app.outputs.http import HttpPublisher
from app.outputs.overlay import SEGMENT_TINT, draw, label_colour
from app.outputs.robot import client, ros_bridge
from app.outputs.robot.base import RobotContext
from app.outputs.robot.message import Messages
from app.pipeline import Pipeline
from conftest import IMAGES, MODELS, PET, PROJECT, run_model
from http_client import request

DEEPLAB = "deeplabv3_mnv2_pascal_quant.tflite"
PASCAL = "pascal_voc_segmentation_labels.txt"
PERSON = 15
VALIDATOR = jsonschema.Draft202012Validator(
    json.loads((PROJECT / "app" / "outputs" / "robot" / "detections.schema.json").read_text()))
#: the segment pipeline on the shared model and labels
DEEPLAB_SET = [f"stages.inference.model={MODELS / DEEPLAB}", f"stages.inference.labels={MODELS / PASCAL}"]
#: only the segmentation drawn
SEGMENTS_ONLY = OverlayParams(boxes=False, banner=False, zones=False, poses=False)


def segmented(image: str, resize: str = "stretch") -> Frame:
    return run_model(DEEPLAB, image, PASCAL, preprocess={"resize": resize}, postprocess={"kind": "segmentation"})


@pytest.fixture(scope="module")
def grace() -> Frame:
    """grace_hopper.bmp through the real DeepLab: person 0.686 of it, the rest background."""
    return segmented("grace_hopper.bmp")


def segments(frame: Frame) -> Segments:
    found = frame.kind_results[SEGMENTS]
    assert isinstance(found, Segments)
    return found


def test_the_overlay_tints_the_person_in_its_colour_and_leaves_the_background(grace):
    mask = segments(grace).mask_at_source()
    assert set(np.unique(mask)) == {0, PERSON}
    drawn = draw(grace, SEGMENTS_ONLY, 10.0)
    np.testing.assert_array_equal(drawn[mask == 0], grace.image[mask == 0])
    person = mask == PERSON
    expected = grace.image[person] * ((1 - SEGMENT_TINT) + SEGMENT_TINT * np.array(label_colour("person")[::-1]) / 255)
    assert np.abs(drawn[person].astype(float) - expected).max() <= 1  # BGR frame: the RGB colour reversed
    assert np.abs(drawn[person].astype(int) - grace.image[person]).mean() > 10
    np.testing.assert_array_equal(draw(grace, OverlayParams(segments=False, boxes=False, banner=False), 10.0),
                                  grace.image)


def test_pixels_the_model_did_not_see_are_not_drawn():
    """Cropped to a square, cat.bmp's sides are UNSEEN: the overlay leaves them as they were."""
    cat = segmented("cat.bmp", "crop")
    mask = segments(cat).mask_at_source()
    unseen, seen_cat = mask == UNSEEN, mask == 8
    assert unseen.mean() > 0.3 and seen_cat.mean() > 0.2
    drawn = draw(cat, SEGMENTS_ONLY, 10.0)
    np.testing.assert_array_equal(drawn[unseen], cat.image[unseen])
    assert np.abs(drawn[seen_cat].astype(int) - cat.image[seen_cat]).mean() > 10


@contextmanager
def serving(frame: Frame, *overrides: str) -> Iterator[int]:
    """An HTTP output whose latest frame is `frame`; yields its port."""
    settings = load_settings("detect", None, [*PET, "http.enabled=true", "http.port=0", *overrides])
    http = HttpPublisher(settings.device.http)
    http.start(PublishContext(settings, Stats(), settings.pipeline.publish))
    http.publish(Output(frame, frame.result("test"), [], {}, OverlayParams(), 10.0))
    try:
        assert http.port is not None
        yield http.port
    finally:
        http.close(time.monotonic() + 5)


def test_api_mask_png_is_the_mask_at_source_size(grace):
    with serving(grace) as port:
        status, headers, body = request(port, "/api/mask.png")
    assert status == 200 and headers["content-type"] == "image/png"
    sent = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    assert sent is not None and sent.dtype == np.uint8 and sent.shape == grace.image.shape[:2]
    np.testing.assert_array_equal(sent, segments(grace).mask_at_source())


def test_api_mask_png_without_a_segmentation_is_404_saying_why():
    cat = run_model("ssd_mobilenet_v1_fine_tuned_pet.tflite", "cat.bmp", "pet_labels.txt")
    with serving(cat) as port:
        status, headers, body = request(port, "/api/mask.png")
    assert status == 404 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": "pipeline detect has no segmentation model, so no mask: /api/mask.png "
                                         "needs one (kind: segmentation)"}


def test_api_mask_png_needs_the_token_as_the_other_routes_do(grace):
    with serving(grace, "http.token=s3cret-token-for-tests") as port:
        refused, _, _ = request(port, "/api/mask.png")
        allowed, _, body = request(port, "/api/mask.png", {"Authorization": "Bearer s3cret-token-for-tests"})
    assert refused == 401 and allowed == 200 and body.startswith(b"\x89PNG")


def test_the_robot_segments_message_carries_the_areas_and_the_mask_as_a_png(grace):
    labels = segments(grace).labels
    timed = replace(grace, timing={"inference": 150.0, "exposure_to_result": 160.0})  # as the inference lane's end
    kind, payload = Messages(RobotContext("cam0", "segment", "cam0", labels, Stats()), 5.0).frame(timed)
    message = json.loads(payload)
    VALIDATOR.validate(message)
    assert kind == message["type"] == "segments"
    assert message["segments"] == segments(grace).as_json()
    assert message["mask"]["format"] == "png" and message["mask"]["header"] == message["header"]
    png = base64.b64decode(message["mask"]["data"])
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED),
                                  segments(grace).mask_at_source())
    assert len(payload) < 65507  # one UDP datagram
    assert "person 0.69" in client.line(message)

    class CompressedImage:  # sensor_msgs/msg/CompressedImage's fields (common_interfaces 4.2)
        def __init__(self, header: object, format: str, data: bytes) -> None:
            self.header, self.format, self.data = header, format, data

    def header(stamp: object, frame_id: str) -> dict:
        return {"stamp": stamp, "frame_id": frame_id}

    msgs = type("Msgs", (), {"CompressedImage": CompressedImage, "Header": header, "Time": dict})
    image = ros_bridge.to_compressed_image(message, msgs)
    assert (image.format, image.data) == ("png", png) and image.header["frame_id"] == "cam0"


def test_a_segmentation_pipeline_sends_the_class_map_then_its_segments_over_udp(grace):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as robot:
        robot.bind(("127.0.0.1", 0))
        robot.settimeout(10)
        target = f"udp.target=127.0.0.1:{robot.getsockname()[1]}"
        settings = load_settings("segment", None, [*DEEPLAB_SET, f"camera.source={IMAGES / 'grace_hopper.bmp'}",
                                                   "udp.enabled=true", target])
        Pipeline(settings, []).run()
        label_info, message = (json.loads(robot.recv(65535)) for _ in range(2))
    for sent in (label_info, message):
        VALIDATOR.validate(sent)
    assert {"class_id": PERSON, "class_name": "person"} in label_info["class_map"]
    assert message["type"] == "segments" and message["segments"] == segments(grace).as_json()
    png = np.frombuffer(base64.b64decode(message["mask"]["data"]), np.uint8)
    np.testing.assert_array_equal(cv2.imdecode(png, cv2.IMREAD_UNCHANGED), segments(grace).mask_at_source())


def test_the_python_api_gives_the_mask_as_an_array_in_source_pixels(grace):
    with open_pipeline("segment", source=str(IMAGES / "grace_hopper.bmp"), overrides=DEEPLAB_SET) as results:
        (result,) = list(results)
    assert result.segments is not None
    mask = result.segments.mask_at_source()
    assert mask.shape == (result.size[1], result.size[0]) == grace.image.shape[:2]
    np.testing.assert_array_equal(mask, segments(grace).mask_at_source())
    assert result.document["segments"] == segments(grace).as_json()
