"""Privacy masking (config.yaml `privacy:`), pixel by pixel on real images through the real models: the hidden
label's pixels are black (fill) or blurred (blur) in every image that leaves, the rest untouched, and a frame
without a mask sends no image at all (fails closed), each refusal counted."""

from __future__ import annotations

import time
from dataclasses import replace

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from app.config import OverlayParams, load_settings
from app.config.privacy import PrivacyConfig
from app.frame import Frame
from app.metrics import Stats
from app.model.kinds.segmentation import SEGMENTS
from app.model.runner import ModelRunner
from app.outputs.base import Output, PublishContext
from app.outputs.http import HttpPublisher
from app.outputs.mqtt import MqttPublisher
from app.outputs.privacy import PRIVACY_UNMASKED, PrivacyUnmasked
from app.outputs.snapshots import SnapshotPublisher
from app.pipeline import Pipeline
from conftest import (BLANK, CAT_BREEDS, IMAGES, MODELS, PET, Collector, alternating_folder, cat_settings, decode_jpeg,
                      imread, pet_pipeline, run_model, subscribed, wait_for)
from http_client import read_frames, request

PERSON = PrivacyConfig(labels=["person"], mode="fill")
#: the MQTT topics of the pipeline `pets` on camera cam0
BASE = "smartcam/cam0/pets"
#: JPEG smears a few pixels across an edge: pixel checks on decoded JPEGs keep this far from the mask's edge
EDGE = 9


@pytest.fixture(scope="module")
def grace() -> Frame:
    """grace_hopper.bmp through the real DeepLab: a frame with its segmentation (person 0.686 of it)."""
    return run_model("deeplabv3_mnv2_pascal_quant.tflite", "grace_hopper.bmp", "pascal_voc_segmentation_labels.txt",
                     postprocess={"kind": "segmentation"})


@pytest.fixture(scope="module")
def cat() -> Frame:
    """cat.bmp through the real pet SSD: a frame with a cat breed's box."""
    return run_model("ssd_mobilenet_v1_fine_tuned_pet.tflite", "cat.bmp", "pet_labels.txt")


def person_pixels(frame: Frame) -> np.ndarray:
    return frame.kind_results[SEGMENTS].mask_at_source() == 15  # type: ignore[attr-defined]


def inside(region: np.ndarray) -> np.ndarray:
    """`region` less EDGE pixels all round its edge."""
    return cv2.erode(region.astype(np.uint8), np.ones((2 * EDGE + 1, 2 * EDGE + 1), np.uint8)).astype(bool)


def boxes(result: dict, shape: tuple[int, ...]) -> np.ndarray:
    """The pixels of the detections' boxes in a result document."""
    hidden = np.zeros(shape, bool)
    for detection in result["detections"]:
        x0, y0, x1, y1 = detection["box"]
        hidden[round(y0):round(y1), round(x0):round(x1)] = True
    return hidden


def output(frame: Frame, privacy: PrivacyConfig) -> Output:
    return Output(frame, {}, [], {}, OverlayParams(), 10.0, privacy=privacy)


def test_fill_blacks_every_person_pixel_and_leaves_the_rest_as_it_was(grace):
    person = person_pixels(grace)
    assert 0.68 < person.mean() < 0.69
    out = output(grace, PERSON)
    masked = out.masked()
    assert not masked[person].any()
    np.testing.assert_array_equal(masked[~person], grace.image[~person])
    sent = decode_jpeg(out.jpeg(annotated=False)).astype(int)
    assert sent[inside(person)].max() <= 8
    assert np.abs(sent - grace.image)[inside(~person)].mean() < 3
    annotated = decode_jpeg(out.jpeg())  # the overlay is drawn on the masked image: its banner hides nothing
    assert (annotated[inside(person)].max(axis=1) <= 8).mean() > 0.97


def test_blur_changes_only_the_person_and_leaves_no_detail_in_it(grace):
    person = person_pixels(grace)
    masked = output(grace, PrivacyConfig(labels=["person"], mode="blur")).masked()
    np.testing.assert_array_equal(masked[~person], grace.image[~person])
    assert np.abs(masked.astype(int) - grace.image)[person].mean() > 10
    assert (masked[inside(person)].max(axis=1) > 8).mean() > 0.9  # blurred, not filled

    def detail(image: np.ndarray) -> float:
        return float(np.abs(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F))[inside(person)].mean())

    assert detail(masked) < detail(grace.image) / 4
    sent = decode_jpeg(output(grace, PrivacyConfig(labels=["person"], mode="blur")).jpeg(annotated=False))
    assert np.abs(sent.astype(int) - masked)[inside(person)].mean() < 3


def test_a_label_the_frame_does_not_have_changes_nothing(grace):
    assert output(grace, PrivacyConfig(labels=["cat"])).masked() is grace.image


def test_without_segmentation_the_boxes_of_the_labels_are_filled(cat):
    (detection,) = cat.detections
    assert detection.label in CAT_BREEDS
    x0, y0, x1, y1 = detection.box
    box = np.zeros(cat.image.shape[:2], bool)
    box[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = True
    masked = output(cat, PrivacyConfig(labels=sorted(CAT_BREEDS))).masked()
    assert not masked[box].any()
    np.testing.assert_array_equal(masked[~box], cat.image[~box])
    assert output(cat, PrivacyConfig(labels=["dog"])).masked() is cat.image


def test_a_frame_without_a_mask_sends_no_image_and_counts_the_drop(grace):
    bare = replace(grace, kind_results={})
    out = output(bare, PERSON)
    with pytest.raises(PrivacyUnmasked):
        out.jpeg()
    with pytest.raises(PrivacyUnmasked):
        out.annotated()
    stats = Stats()
    assert out.sendable_jpeg(stats) is None and stats.drop_counts() == {PRIVACY_UNMASKED: 1}
    assert output(bare, PrivacyConfig()).sendable_jpeg(stats) is not None  # privacy off: sent as before


def test_a_detector_that_found_nothing_sends_the_frame_and_a_classifier_sends_none():
    """Boxes are the mask of a detector's frame: none found is nothing to hide, not a mask missing. A classifier's
    frame has no mask at all."""
    empty = run_model("ssd_mobilenet_v1_fine_tuned_pet.tflite", BLANK, "pet_labels.txt")
    assert empty.detections == [] and output(empty, PERSON).masked() is empty.image
    classified = run_model("mobilenet_v2_1.0_224_quant.tflite", "cat.bmp", "imagenet_labels.txt",
                           postprocess={"kind": "classifier"})
    with pytest.raises(PrivacyUnmasked):
        output(classified, PERSON).masked()


def test_snapshots_written_by_a_real_pipeline_hide_the_cats_box(tmp_path):
    """config.yaml's privacy reaches every frame's Output through the output lane: the snapshot on disk has the
    detected cat's box black."""
    settings = cat_settings(tmp_path, f"camera.source={alternating_folder(tmp_path, cats=1)}",
                            "snapshots.annotated=false", f"privacy.labels=[{', '.join(sorted(CAT_BREEDS))}]")
    events = Collector()
    Pipeline(settings, [events, SnapshotPublisher(settings.device.snapshots)]).run()
    ((_, result),) = events.events
    (snapshot,) = (tmp_path / "snaps").iterdir()
    sent = decode_jpeg(snapshot.read_bytes()).astype(int)
    hidden = boxes(result, sent.shape[:2])
    assert hidden.mean() > 0.1
    assert sent[inside(hidden)].max() <= 8
    assert np.abs(sent - imread(IMAGES / "cat.bmp"))[inside(~hidden)].mean() < 3


def served(frame: Frame, privacy: PrivacyConfig, tmp_path) -> tuple[HttpPublisher, Stats]:
    settings = load_settings("detect", None, [*PET, "http.enabled=true", "http.port=0"])
    http, stats = HttpPublisher(settings.device.http), Stats()
    http.start(PublishContext(settings, stats, settings.pipeline.publish))
    http.publish(output(frame, privacy))
    return http, stats


def test_http_snapshot_and_stream_send_the_masked_frame_only(grace, tmp_path):
    http, stats = served(grace, PERSON, tmp_path)
    try:
        assert http.port is not None
        status, _, body = request(http.port, "/snapshot.jpg")
        (streamed,) = read_frames(http.port, 1)
    finally:
        http.close(time.monotonic() + 5)
    person = inside(person_pixels(grace))
    assert status == 200
    for jpeg in (body, streamed):
        assert (decode_jpeg(jpeg)[person].max(axis=1) <= 8).mean() > 0.97
    assert not stats.drop_counts()


def test_http_sends_no_image_of_a_frame_without_a_mask(grace, tmp_path):
    http, stats = served(replace(grace, kind_results={}), PERSON, tmp_path)
    try:
        assert http.port is not None
        status, headers, body = request(http.port, "/snapshot.jpg")
    finally:
        http.close(time.monotonic() + 5)
    assert status == 503 and headers["content-type"].startswith("application/json"), body[:80]
    assert stats.drop_counts() == {PRIVACY_UNMASKED: 1}


def test_privacy_config_takes_fill_or_blur_only():
    assert PrivacyConfig.model_validate({"labels": ["person"], "mode": "blur"}).enabled
    assert not PrivacyConfig().enabled
    with pytest.raises(ValidationError, match="'fill' or 'blur'"):
        PrivacyConfig.model_validate({"labels": ["person"], "mode": "pixelate"})


def test_the_mqtt_image_hides_the_cats_box(tmp_path, broker):
    settings = load_settings(str(pet_pipeline(tmp_path, "pets", publish={"labels": None, "appear_frames": 1})), None,
                             ["mqtt.enabled=true", "mqtt.host=127.0.0.1", f"mqtt.port={broker.port}",
                              f"camera.source={alternating_folder(tmp_path, cats=1)}",
                              f"privacy.labels=[{', '.join(sorted(CAT_BREEDS))}]"])
    pipeline = Pipeline(settings, [MqttPublisher(settings.device.mqtt), Collector()])
    with subscribed(broker.port) as live:
        pipeline.run()
        wait_for(lambda: live.payloads(f"{BASE}/snapshot"), "the snapshot image")
    collector = pipeline.outputs.publishers[-1]
    assert isinstance(collector, Collector)
    ((_, result),) = collector.events
    sent = decode_jpeg(live.payloads(f"{BASE}/snapshot")[0]).astype(int)
    hidden = inside(boxes(result, sent.shape[:2]))
    assert hidden.mean() > 0.1 and (sent[hidden].max(axis=1) <= 8).mean() > 0.97  # the overlay's box and label on top


def test_privacy_on_a_classifier_is_warned_of_at_start_with_what_to_do():
    """A classifier gives nothing to mask: every image would be withheld, so the run says so once, at start."""
    settings = load_settings("classify", None, ["privacy.labels=[person]", "stages.inference.model="
                                                f"{MODELS / 'mobilenet_v2_1.0_224_quant.tflite'}",
                             f"stages.inference.labels={MODELS / 'imagenet_labels.txt'}"])
    runner = ModelRunner.load(settings)
    (warning,) = [w for w in runner.fit_warnings(settings) if "privacy" in w]
    assert warning.endswith("privacy.labels: mobilenet_v2_1.0_224_quant.tflite is a classifier, which gives neither "
                            "boxes nor segments to mask, so no image of this pipeline leaves the device (privacy "
                            "fails closed): use a detector or a segmentation model, or turn privacy off")
    off = load_settings("classify", None, [f"stages.inference.model={MODELS / 'mobilenet_v2_1.0_224_quant.tflite'}",
                                           f"stages.inference.labels={MODELS / 'imagenet_labels.txt'}"])
    assert not [w for w in runner.fit_warnings(off) if "privacy" in w]
