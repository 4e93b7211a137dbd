"""Labels as the models mean them, checked with the real networks in shared/models.

Numbered files give class ids; plain files are numbered by line with blank lines kept; the background offset is
only for a plain 1000-line file with a 1001-class model; a model given by path is recognised by its checksum; a
model that cannot give what its pipeline consumes is refused with its shapes; watched labels the model cannot
produce are a warning; a box with no area in the source frame is dropped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.config import load_settings
from app.errors import ConfigError
from app.model.fit import check_fit
from app.frame import InputGeometry
from app.model.manifest import read_labels, resolve_labels
from app.pipeline import Pipeline
from app.model.runtime import load_model
from app.model.kinds.ssd import decode_ssd
from app.stages.preprocess import fit
from conftest import MODELS, PROJECT, FakeCamera, run_model

IMAGENET = (MODELS / "imagenet_labels.txt").read_text().splitlines()  # line 0 is "background"
PET = (MODELS / "pet_labels.txt").read_text().splitlines()
CLASSIFIER = "mobilenet_v2_1.0_224_quant.tflite"
DEEPLAB = "deeplabv3_mnv2_pascal_quant.tflite"
PET_SSD = "ssd_mobilenet_v1_fine_tuned_pet.tflite"


def written(tmp_path: Path, name: str, lines: list[str]) -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def app(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=120)


def top_class(labels_file: str) -> tuple[int, str]:
    frame = run_model(CLASSIFIER, "cat.bmp", read_labels(Path(labels_file)))
    return frame.classes[0].class_id, frame.classes[0].label


def test_a_numbered_file_gives_class_ids_as_written(tmp_path):
    numbered = written(tmp_path, "numbered.txt", [f"{i} {name}" for i, name in enumerate(IMAGENET) if i])
    assert top_class(numbered) == (286, "Egyptian cat")


def test_numbers_with_a_colon_count_too(tmp_path):
    numbered = written(tmp_path, "colon.txt", [f"{i}: {name}" for i, name in enumerate(IMAGENET) if i])
    assert top_class(numbered) == (286, "Egyptian cat")


def test_a_plain_1000_line_file_with_a_1001_class_model_skips_the_background(tmp_path):
    assert top_class(written(tmp_path, "plain1000.txt", IMAGENET[1:])) == (286, "Egyptian cat")


def test_a_plain_1001_line_file_is_numbered_from_0():
    assert top_class(str(MODELS / "imagenet_labels.txt")) == (286, "Egyptian cat")


@pytest.mark.parametrize("numbered", [False, True], ids=["plain", "numbered"])
def test_a_file_saved_by_a_windows_tool_with_a_byte_order_mark_and_crlf_reads_the_same(tmp_path, numbered):
    """Class 0 was "\ufeffperson" (its events and entities never fired); a numbered file was read as plain."""
    names = [f"{i} {name}" if numbered else name for i, name in enumerate(PET)]
    path = tmp_path / "windows.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(names).encode() + b"\r\n")
    labels = read_labels(path)
    assert labels.numbered == numbered
    assert labels.names == dict(enumerate(PET))
    best = run_model(PET_SSD, "cat.bmp", labels).detections[0]
    assert (best.class_id, best.label) == (11, "Egyptian_Mau")


def test_a_blank_line_keeps_its_number(tmp_path):
    """Line 5 (Bengal) left blank: Egyptian_Mau is still class 11 and keeps its name."""
    labels = written(tmp_path, "pets.txt", ["" if name == "Bengal" else name for name in PET])
    best = run_model(PET_SSD, "cat.bmp", read_labels(Path(labels))).detections[0]
    assert (best.class_id, best.label) == (11, "Egyptian_Mau")
    assert 5 not in read_labels(Path(labels)).names


def test_a_model_given_by_path_gets_the_labels_of_the_named_model_it_is(tmp_path):
    path = MODELS / "face_detection_short_range.tflite"
    labels = resolve_labels(None, str(path), tmp_path, path)
    assert labels.names == {0: "face"}


def test_the_face_pipeline_with_the_model_by_path_labels_faces(tmp_path):
    pipeline = tmp_path / "faces.yaml"
    pipeline.write_text((PROJECT / "pipelines" / "face.yaml").read_text().replace(", labels: [face]", ""))
    run = app("--pipeline", str(pipeline), "--source", str(MODELS.parent / "images" / "grace_hopper.bmp"),
              "--model", str(MODELS / "face_detection_short_range.tflite"), "--output", "jsonl:-")
    assert run.returncode == 0, run.stderr
    assert [d["label"] for d in json.loads(run.stdout)["detections"]] == ["face"]
    assert "warning" not in run.stderr.lower()


def test_a_classifier_in_the_detect_pipeline_is_refused_with_its_shapes():
    run = app("--pipeline", "detect", "--source", str(MODELS.parent / "images" / "cat.bmp"),
              "--model", str(MODELS / CLASSIFIER))
    assert run.returncode == 2
    assert "error: stages.postprocess.kind: mobilenet_v2_1.0_224_quant.tflite is not ssd (its outputs: [1, 1001]" \
        in run.stderr


def test_a_classifier_under_a_filter_is_refused(tmp_path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"stages:\n  - preprocess: {{}}\n  - inference: {{model: {MODELS / CLASSIFIER}}}\n"
                        "  - postprocess: {}\n  - filter: {labels: [cat]}\n")
    settings = load_settings(str(pipeline))
    with pytest.raises(ConfigError, match=r"stages.filter: work on detections, but .* is a classifier .*\[1, 1001\]"):
        check_fit(settings.pipeline, load_model(MODELS / CLASSIFIER), read_labels(MODELS / "imagenet_labels.txt"))


def test_publish_labels_choose_a_segmentation_models_areas_but_snapshot_labels_are_refused(tmp_path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"stages:\n  - preprocess: {{}}\n  - inference: {{model: {MODELS / DEEPLAB}}}\n"
                        "  - postprocess: {kind: segmentation}\npublish: {labels: [person, truck]}\n")
    model, labels = load_model(MODELS / DEEPLAB), read_labels(MODELS / "pascal_voc_segmentation_labels.txt")
    warnings = check_fit(load_settings(str(pipeline)).pipeline, model, labels)
    assert len(warnings) == 1 and warnings[0].startswith("publish.labels: truck is not among the labels of ")
    settings = load_settings(str(pipeline), overrides=["publish.snapshots.labels=[person]"])
    with pytest.raises(ConfigError, match=r"^publish.snapshots.labels: work on detections, but .* is a segmentation"):
        check_fit(settings.pipeline, model, labels)


def test_watched_labels_the_model_cannot_produce_are_a_warning_in_validate():
    run = app("validate", "--pipeline", "detect", "--set", f"stages.inference.model={MODELS / PET_SSD}",
              "--set", f"stages.inference.labels={MODELS / 'pet_labels.txt'}")
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, run.stderr  # publish.labels and publish.snapshots.labels
    assert "publish.labels: person, car, bicycle, motorcycle, truck, dog, cat, bird are not among the labels of " \
           f"{PET_SSD}" in warnings[0]
    assert "Abyssinian, american_bulldog" in warnings[0] and "pet_labels.txt" in warnings[0]


def test_a_model_without_labels_is_called_out_at_start(tmp_path):
    run = app("--pipeline", "detect", "--source", str(MODELS.parent / "images" / "cat.bmp"),
              "--model", str(MODELS / PET_SSD), "--output", "jsonl:-")
    assert run.returncode == 0, run.stderr
    assert "it has no labels: results carry class ids" in run.stderr
    assert json.loads(run.stdout)["detections"][0]["label"] == "11"


def test_a_box_wholly_in_the_letterbox_padding_is_dropped():
    """A 300x300 input letterboxing a 1280x720 frame has padding above and below it: a box there has no area."""
    geometry: InputGeometry = fit(1280, 720, 300, 300, "letterbox")[0]
    boxes = np.array([[0.0, 0.1, 0.1, 0.3],   # ymin, xmin, ymax, xmax: in the top padding (y < 0.21875)
                      [0.4, 0.4, 0.6, 0.6]])  # in the picture
    found = decode_ssd(boxes, np.array([3.0, 4.0]), np.array([0.9, 0.8]), geometry, {}, 0.5, 10)
    assert [d.class_id for d in found] == [4]
    assert all(d.box[2] > d.box[0] and d.box[3] > d.box[1] for d in found)


def test_the_watched_label_warning_is_on_the_status_page_too():
    settings = load_settings("detect", None, [f"stages.inference.model={MODELS / PET_SSD}",
                                              f"stages.inference.labels={MODELS / 'pet_labels.txt'}"])
    pipeline = Pipeline(settings, [], source=FakeCamera())
    warnings = pipeline.stats.document()["warnings"]
    assert any("publish.labels: person, car" in warning for warning in warnings), warnings
