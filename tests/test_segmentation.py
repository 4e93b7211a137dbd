"""The segmentation kind with the real DeepLab v3 (PASCAL VOC) on real images: the known class shares, the compact
`segments` JSON, the mask at source size through the preprocess geometry, and the kind refusing other models'
tensors while the other kinds refuse its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
import pytest

from app.errors import ConfigError
from app.model.kinds.choose import choose_kind
from app.model.kinds.segmentation import UNSEEN, Segments, class_map_of
from app.model.manifest import Labels, read_labels
from app.model.runtime import LoadedModel, TensorSpec, load_model
from conftest import IMAGES, MODELS, app, run_model

DEEPLAB = "deeplabv3_mnv2_pascal_quant.tflite"
PASCAL = "pascal_voc_segmentation_labels.txt"


def segments(image: str, resize: str = "stretch") -> Segments:
    frame = run_model(DEEPLAB, image, PASCAL, preprocess={"resize": resize}, postprocess={"kind": "segmentation"})
    result = frame.kind_results["segments"]
    assert isinstance(result, Segments)
    return result


def described(name: str, shape: tuple[int, ...], dtype: type, scale: float = 0.0) -> LoadedModel:
    """A model as the kinds see it at start: its file name and its one output tensor."""
    return cast(LoadedModel, SimpleNamespace(path=Path(name), outputs=[TensorSpec(0, "out", shape, dtype, scale, 0)]))


@pytest.mark.parametrize(("image", "label", "share"), [
    ("grace_hopper.bmp", "person", 0.686), ("bird.bmp", "bird", 0.188), ("cat.bmp", "cat", 0.432)])
def test_the_largest_class_besides_the_background_is_the_known_answer(image, label, share):
    """shared/README's known answers: input stretched to 513, the class map resized back by nearest neighbour."""
    found = segments(image).as_json()
    assert [s["label"] for s in found] == sorted([label, "background"], key=lambda n: n != found[0]["label"])
    named = next(s for s in found if s["label"] != "background")
    assert named["label"] == label and named["area"] == pytest.approx(share, abs=0.005)
    assert sum(s["area"] for s in found) == pytest.approx(1.0, abs=1e-3)
    assert [s["area"] for s in found] == sorted((s["area"] for s in found), reverse=True)


def test_the_json_is_the_compact_segments_list_and_the_mask_stays_out():
    frame = run_model(DEEPLAB, "cat.bmp", PASCAL, preprocess={"resize": "stretch"})  # auto: the manifest's kind
    result = frame.result("segment")
    assert result["segments"] == [{"label": "background", "class_id": 0, "area": 0.5675},
                                  {"label": "cat", "class_id": 8, "area": 0.4325}]
    assert json.loads(json.dumps(result)) == result and len(json.dumps(result["segments"])) < 200


@pytest.mark.parametrize("resize", ["stretch", "letterbox", "crop"])
def test_the_mask_is_at_source_size_and_the_areas_are_its_shares(resize):
    found = segments("cat.bmp", resize)
    mask = found.mask_at_source()
    assert mask.shape == (341, 512) and mask.dtype == np.uint8
    for segment in found.as_json():
        assert segment["area"] == pytest.approx(float((mask == segment["class_id"]).mean()), abs=1e-4)
    unseen = float((mask == UNSEEN).mean())
    assert unseen > 0.3 if resize == "crop" else unseen == 0  # a crop leaves the frame's sides unseen


def test_the_mask_lands_on_the_cat_whatever_the_preprocess_geometry():
    """The cat's pixels centre where YOLOv8n's known box (51, 40, 365, 336) is, stretched or letterboxed (the
    letterbox's padding is no part of the source mask), and at the same place within 15 pixels (the two inputs
    differ, so the model's answers do a little; the letterbox's padding is 56 source pixels each side)."""
    centres = []
    for resize in ("stretch", "letterbox"):
        rows, columns = np.nonzero(segments("cat.bmp", resize).mask_at_source() == 8)
        centres.append((columns.mean(), rows.mean()))
        assert 51 < centres[-1][0] < 365 and 40 < centres[-1][1] < 336
    (x0, y0), (x1, y1) = centres
    assert np.hypot(x1 - x0, y1 - y0) < 15


def test_auto_takes_deeplab_by_its_tensors_and_the_manifest_declares_it(tmp_path):
    renamed = tmp_path / "my_segmenter.tflite"  # a name the manifest does not know: the tensors decide
    shutil.copy(MODELS / DEEPLAB, renamed)
    assert choose_kind("auto", load_model(renamed), Labels()).name == "segmentation"
    assert choose_kind("auto", load_model(MODELS / DEEPLAB), Labels()).name == "segmentation"


def test_logits_are_taken_under_auto_only_when_the_labels_name_their_classes():
    pascal = read_labels(MODELS / PASCAL)
    logits = described("logits.tflite", (1, 65, 65, 21), np.float32)
    assert choose_kind("auto", logits, pascal).name == "segmentation"
    assert choose_kind("segmentation", logits, Labels()).name == "segmentation"
    heatmaps = described("heatmaps.tflite", (1, 48, 48, 17), np.float32)
    with pytest.raises(ConfigError, match=r"as segmentation, its 17 channels may be heatmaps or features"):
        choose_kind("auto", heatmaps, Labels())
    for not_a_map in (described("multipose.tflite", (1, 6, 56), np.float32),
                      described("yolo.tflite", (1, 84, 8400), np.int8, 0.004),
                      described("one_row.tflite", (1, 1, 17, 3), np.uint8, 0.004)):
        with pytest.raises(ConfigError, match="a class map .1, H, W. of class ids, or logits"):
            choose_kind("segmentation", not_a_map, Labels())


def test_logits_become_the_class_of_their_largest_channel():
    logits = np.zeros((2, 3, 4), np.int8)
    logits[0, 1, 2] = logits[1, 2, 3] = 5
    assert class_map_of(logits).tolist() == [[0, 2, 0], [0, 0, 3]]
    class_map = np.array([[1, 2], [3, 4]], np.int64)
    assert class_map_of(class_map).tolist() == class_map.tolist()


def test_the_segment_pipeline_prints_segments(tmp_path):
    models_dir = tmp_path / "models"
    pulled = app("models", "pull", "deeplabv3_mnv2_pascal_quant", "--from", MODELS, "--set", f"models.dir={models_dir}")
    assert pulled.returncode == 0, pulled.stderr
    checked = app("validate", "--pipeline", "segment", "--set", f"models.dir={models_dir}")
    assert checked.returncode == 0, checked.stderr
    ran = app("run", "--pipeline", "segment", "--set", f"models.dir={models_dir}",
              "--source", IMAGES / "grace_hopper.bmp", "--output", "jsonl:-")
    assert ran.returncode == 0, ran.stderr
    (line,) = ran.stdout.splitlines()
    person = json.loads(line)["segments"][0]
    assert (person["label"], person["class_id"]) == ("person", 15) and person["area"] == pytest.approx(0.686, abs=0.005)


def test_the_mask_is_made_once_a_frame_and_shared_read_only():
    """Privacy, the overlay and the mask API each ask for the mask: one array, made once, that none can change."""
    found = segments("grace_hopper.bmp")
    mask = found.mask_at_source()
    assert found.mask_at_source() is mask and not mask.flags.writeable
    with pytest.raises(ValueError):
        mask[0, 0] = 0
