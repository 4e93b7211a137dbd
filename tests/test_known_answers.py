"""The real networks in shared/models give their known answers through our preprocess and decoders.

Covers every decoder (SSD with the post-processing op, raw SSD with anchors, classifier), each resize mode,
labels from files and from TFLite metadata, and boxes in source-frame pixels.
"""

from __future__ import annotations

import pytest

from app.model.manifest import Labels, labels_from_metadata
from conftest import CAT_BREEDS, IMAGES, MODELS, imread, iou, run_model

PET_CAT_BOX = (185, 35, 338, 221)
GRACE_FACE_BOX = {"stretch": (173, 137, 358, 354), "letterbox": (169, 142, 366, 338)}
BLAZEFACE = {"kind": "ssd_anchors"}
PET_LABELS = "pet_labels.txt"


@pytest.mark.parametrize("model", ["mobilenet_v1_0.5_160_quant.tflite", "mobilenet_v2_1.0_224_quant.tflite"])
@pytest.mark.parametrize("resize", ["stretch", "letterbox", "crop"])
def test_classifier_top1_is_egyptian_cat(model, resize):
    frame = run_model(model, "cat.bmp", "imagenet_labels.txt", {"resize": resize}, {"max_results": 3, "min_score": 0})
    assert (frame.classes[0].class_id, frame.classes[0].label) == (286, "Egyptian cat")
    assert len(frame.classes) == 3 and frame.classes[0].score > frame.classes[1].score


def test_classifier_with_labels_from_tflite_metadata():
    labels = labels_from_metadata(MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite")
    assert len(labels.names) == 1001 and labels.names[0] == "background" and not labels.numbered
    frame = run_model("tf2_mobilenet_v2_1.0_224_ptq.tflite", "cat.bmp", labels)
    assert (frame.classes[0].class_id, frame.classes[0].label) == (286, "Egyptian cat")


def test_classifier_never_reports_the_background_class():
    """Everything the 1001-class model scores, at most max_results (1000): exactly the 1000 real classes."""
    frame = run_model("mobilenet_v2_1.0_224_quant.tflite", "cat.bmp", "imagenet_labels.txt", {},
                      {"max_results": 1000, "min_score": 0})
    assert sorted(c.class_id for c in frame.classes) == list(range(1, 1001))


def test_pet_ssd_best_box_on_cat():
    frame = run_model("ssd_mobilenet_v1_fine_tuned_pet.tflite", "cat.bmp", PET_LABELS)
    best = frame.detections[0]
    assert best.label in CAT_BREEDS
    assert iou(best.box, PET_CAT_BOX) >= 0.85


def test_letterbox_and_stretch_agree_on_the_pet_box():
    boxes = {resize: run_model("ssd_mobilenet_v1_fine_tuned_pet.tflite", "cat.bmp", PET_LABELS,
                               {"resize": resize}).detections[0].box for resize in ("stretch", "letterbox", "crop")}
    assert iou(boxes["stretch"], boxes["letterbox"]) >= 0.8
    assert iou(boxes["stretch"], boxes["crop"]) >= 0.8
    assert iou(boxes["letterbox"], PET_CAT_BOX) >= 0.8


def test_boxes_are_in_source_pixels_and_clipped():
    """The same picture at 720p gives the box scaled to 720p, within the frame."""
    image = imread(IMAGES / "cat_720p.jpg")
    frame = run_model("ssd_mobilenet_v1_fine_tuned_pet.tflite", image, PET_LABELS)
    height, width = image.shape[:2]
    for detection in frame.detections:
        x0, y0, x1, y1 = detection.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    assert frame.detections[0].label in CAT_BREEDS


def test_ssd_respects_min_score_and_max_results():
    frame = run_model("ssd_mobilenet_v1_fine_tuned_pet.tflite", "cat.bmp", PET_LABELS, {},
                      {"min_score": 0.0, "max_results": 3})
    scores = [d.score for d in frame.detections]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_blazeface_finds_grace_hopper(resize):
    frame = run_model("face_detection_short_range.tflite", "grace_hopper.bmp", Labels({0: "face"}), {"resize": resize},
                      BLAZEFACE)
    assert len(frame.detections) == 1
    face = frame.detections[0]
    assert face.label == "face" and face.score > 0.8
    assert iou(face.box, GRACE_FACE_BOX[resize]) >= 0.9


def test_blazeface_finds_no_face_on_a_cat():
    frame = run_model("face_detection_short_range.tflite", "cat.bmp", Labels({0: "face"}), {}, BLAZEFACE)
    assert frame.detections == []


def test_auto_kind_decides_from_the_output_tensors():
    assert run_model("face_detection_short_range.tflite", "grace_hopper.bmp").detections
    assert run_model("ssd_mobilenet_v1_fine_tuned_pet.tflite", "cat.bmp").detections[0].label.isdigit()
    assert run_model("mobilenet_v1_0.25_128_quant.tflite", "cat.bmp", postprocess={"min_score": 0}).classes
