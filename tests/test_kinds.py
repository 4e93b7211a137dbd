"""Model kinds come from one registry: the declared kind decides, the tensors only check it, `auto` guesses only
what the tensors plainly say, and a kind added to the registry is declared, checked and decoded like the others.

Checked with the real networks in shared/models; a [1, 1280] embedding-shaped output (no such model is shared)
is given as its tensor description.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
import pytest
from pydantic import ValidationError

from app.config import PostprocessParams
from app.errors import ConfigError
from app.frame import Frame
from app.model.cut import cut_model
from app.model.kinds import AUTO, KIND_MODULES, KINDS
from app.model.kinds.base import Kind
from app.model.kinds.choose import choose_kind
from app.model.manifest import Labels, declared_kind, manifest, read_labels
from app.model.runtime import LoadedModel, TensorSpec, load_model
from app.stages.base import StageContext
from app.stages.postprocess import Postprocess
from conftest import MODELS, run_model

def _embedder() -> str:
    """The embedding sample is made, not shared: the classifier cut at its pooled features, in a folder of the
    tests' own (made again only when the classifier is another file)."""
    folder = Path(tempfile.gettempdir()) / f"smartcam-tests-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    return str(cut_model(MODELS / "mobilenet_v2_1.0_224_quant.tflite", "MobilenetV2/Logits/AvgPool",
                         folder / "mobilenet_v2_embedding.tflite"))


#: a real model and image each registered kind decodes (a new kind adds its own)
SAMPLES: dict[str, tuple[str, str, Labels | str]] = {
    "ssd": ("ssd_mobilenet_v1_fine_tuned_pet.tflite", "cat.bmp", "pet_labels.txt"),
    "ssd_anchors": ("face_detection_short_range.tflite", "grace_hopper.bmp", Labels({0: "face"})),
    "classifier": ("mobilenet_v2_1.0_224_quant.tflite", "cat.bmp", "imagenet_labels.txt"),
    "segmentation": ("deeplabv3_mnv2_pascal_quant.tflite", "cat.bmp", "pascal_voc_segmentation_labels.txt"),
    "yolo": ("yolov8n_full_integer_quant.tflite", "cat.bmp", "coco80_labels.txt"),
    "pose": ("movenet_single_pose_lightning_ptq.tflite", "squat.bmp", Labels()),
    "embedding": (_embedder(), "cat.bmp", Labels()),
}
KEY = "stages.postprocess.kind"


def described(name: str, *outputs: tuple[tuple[int, ...], type, float]) -> LoadedModel:
    """A model as the kinds see it at start: its file name and its output tensors (shape, dtype, scale)."""
    specs = [TensorSpec(i, f"out{i}", shape, dtype, scale, 0) for i, (shape, dtype, scale) in enumerate(outputs)]
    return cast(LoadedModel, SimpleNamespace(path=Path(name), outputs=specs))


EMBEDDING = ((1, 1280), np.float32, 0.0)


@pytest.mark.parametrize("module", KIND_MODULES)
def test_every_registered_kind_is_one_module_with_what_it_produces_its_check_and_its_decoder(module):
    kind = import_module(f"app.model.kinds.{module}").KIND
    assert isinstance(kind, Kind) and KINDS[module] is kind and kind.name == module
    model, image, labels = SAMPLES[kind.name]
    for other, (other_model, _, _) in SAMPLES.items():
        problem = kind.mismatch(load_model(MODELS / other_model).outputs)
        assert (problem is None) == (other == kind.name), (other, problem)
    frame = run_model(model, image, labels, postprocess={"kind": kind.name, "min_score": 0.3})
    assert frame.result("test")[kind.produces], f"{kind.name} produced no {kind.produces}"


@pytest.mark.parametrize("declared, sample", [(d, s) for d in SAMPLES for s in SAMPLES if d != s])
def test_a_kind_declared_for_another_kinds_model_is_refused_and_auto_never_takes_one_for_the_other(declared, sample,
                                                                                                   tmp_path):
    """Every kind against every other kind's sample model: declared, it is refused in one line naming what the
    model looks like; under auto (the file renamed, so the manifest does not know it) it is never taken for it."""
    model_file, _, labels = SAMPLES[sample]
    known = read_labels(MODELS / labels) if isinstance(labels, str) else labels
    with pytest.raises(ConfigError, match=rf"^{KEY}: {re.escape(Path(model_file).name)} is not {declared} \(its "
                                          rf"outputs: .*; it looks like {sample}\)$"):
        choose_kind(declared, load_model(MODELS / model_file), known)
    renamed = tmp_path / "unnamed.tflite"
    shutil.copy(MODELS / model_file, renamed)
    try:
        assert choose_kind(AUTO, load_model(renamed), known).name != declared
    except ConfigError as refused:
        assert declared not in str(refused).split("declare its kind")[0]


def test_the_registry_and_the_samples_name_the_same_kinds():
    assert set(KINDS) == set(SAMPLES) == set(KIND_MODULES)


def test_every_kind_the_manifest_declares_is_registered():
    assert {entry.kind for entry in manifest().values()} <= set(KINDS)
    assert declared_kind(MODELS / "face_detection_short_range.tflite") == "ssd_anchors"
    assert declared_kind(MODELS / "mobilenet_v1_0.25_128_quant.tflite") is None  # not a named model


def test_the_stage_says_what_its_kind_produces():
    for model, labels, produces in (("mobilenet_v2_1.0_224_quant.tflite", "imagenet_labels.txt", "classes"),
                                    ("ssd_mobilenet_v1_fine_tuned_pet.tflite", "pet_labels.txt", "detections")):
        stage = Postprocess(PostprocessParams())
        stage.start(StageContext(load_model(MODELS / model), read_labels(MODELS / labels)))
        assert stage.produces == produces


def test_a_declared_kind_the_outputs_do_not_fit_is_named_in_one_line():
    with pytest.raises(ConfigError) as refused:
        choose_kind("ssd_anchors", load_model(MODELS / "ssd_mobilenet_v1_fine_tuned_pet.tflite"), Labels())
    assert str(refused.value) == (
        f"{KEY}: ssd_mobilenet_v1_fine_tuned_pet.tflite is not ssd_anchors (its outputs: [1, 10, 4], [1, 10], "
        "[1, 10], [1]; an ssd_anchors model has two outputs: box regressors [1, N, 4 or more] and score logits "
        "[1, N, 1]; it looks like ssd)")


def test_the_manifest_kind_decides_under_auto_and_its_mismatch_is_named(tmp_path):
    """The face model under the file name of the manifest's classifier: declared a classifier, it is refused,
    though `auto` would have taken its tensors for ssd_anchors."""
    renamed = tmp_path / "mobilenet_v2_1.0_224_quant.tflite"
    shutil.copy(MODELS / "face_detection_short_range.tflite", renamed)
    with pytest.raises(ConfigError, match=r"^stages.postprocess.kind: mobilenet_v2_1.0_224_quant.tflite is not "
                                          r"classifier, the kind the model manifest gives it \(its outputs: "
                                          r"\[1, 896, 16\], \[1, 896, 1\]; .*; it looks like ssd_anchors\)$"):
        choose_kind("auto", load_model(renamed), Labels())
    assert choose_kind("auto", load_model(MODELS / "face_detection_short_range.tflite"), Labels()).name == \
        "ssd_anchors"


def test_the_pipeline_kind_decides_over_the_manifest():
    model = load_model(MODELS / "mobilenet_v2_1.0_224_quant.tflite")  # the manifest: classifier
    with pytest.raises(ConfigError, match=r"^stages.postprocess.kind: mobilenet_v2_1.0_224_quant.tflite is not ssd "):
        choose_kind("ssd", model, Labels())


def test_auto_refuses_an_embedding_shaped_output_and_says_to_declare_the_kind():
    imagenet = read_labels(MODELS / "imagenet_labels.txt")
    with pytest.raises(ConfigError) as refused:
        choose_kind("auto", described("embedder.tflite", EMBEDDING), imagenet)
    assert str(refused.value) == (
        f"{KEY}: auto cannot tell what embedder.tflite is (its outputs: [1, 1280]; as classifier, its 1280 values "
        "may be an embedding: a classifier's are quantised as probabilities or named by its labels, which name "
        f"1001): declare its kind in {KEY}, one of {', '.join(KINDS)}")
    quantised_features = ((1, 1280), np.uint8, 0.0235)  # a quantised model cut at its pooled features
    with pytest.raises(ConfigError, match="auto cannot tell what embedder.tflite is"):
        choose_kind("auto", described("embedder.tflite", quantised_features), Labels())


def test_the_declared_kind_decides_over_what_auto_would_refuse():
    """The same [1, 1280] output, declared a classifier by the pipeline or under a manifest classifier's name."""
    assert choose_kind("classifier", described("embedder.tflite", EMBEDDING), Labels()).name == "classifier"
    assert choose_kind("auto", described("mobilenet_v2_1.0_224_quant.tflite", EMBEDDING), Labels()).name == \
        "classifier"


def test_auto_takes_a_float_output_named_by_its_labels_for_a_classifier():
    labels = Labels({i: f"class {i}" for i in range(1280)}, True, 1280)
    assert choose_kind("auto", described("float_classifier.tflite", EMBEDDING), labels).name == "classifier"


@dataclass(frozen=True)
class Brightness:
    """A toy kind's result: the mean of the model's output."""

    mean: float

    def as_json(self) -> float:
        return round(self.mean, 4)


def _brightness_decoder(params: PostprocessParams, model: LoadedModel, labels: Labels):
    (output,) = model.outputs

    def decode(frame: Frame) -> None:
        frame.kind_results["brightness"] = Brightness(float(output.dequantize(model.output(output)).mean()))
    return decode


BRIGHTNESS = Kind("brightness", "brightness", lambda outputs: None if len(outputs) == 1 else "one output",
                  _brightness_decoder)


def test_a_kind_added_to_the_registry_is_declared_checked_and_decoded(monkeypatch):
    """One registry entry: the pipeline may declare it, it decides over the classifier the shapes also fit, its
    mismatch is named, and its result reaches the frame's JSON under its key."""
    with pytest.raises(ValidationError, match=rf"expected one of auto, {', '.join(KINDS)} \["):
        PostprocessParams(kind="brightness")
    monkeypatch.setitem(KINDS, "brightness", BRIGHTNESS)
    frame = run_model("mobilenet_v1_0.25_128_quant.tflite", "cat.bmp", postprocess={"kind": "brightness"})
    assert frame.classes == [] and 0 < frame.result("test")["brightness"] < 1
    with pytest.raises(ConfigError, match=r"is not brightness \(its outputs: .*; one output; it looks like ssd\)"):
        run_model("ssd_mobilenet_v1_fine_tuned_pet.tflite", "cat.bmp", postprocess={"kind": "brightness"})


def test_auto_refuses_outputs_two_kinds_plainly_fit(monkeypatch):
    monkeypatch.setitem(KINDS, "brightness", BRIGHTNESS)
    with pytest.raises(ConfigError, match=r"auto cannot tell what mobilenet_v1_0.25_128_quant.tflite is \(its "
                                          r"outputs: \[1, 1001\]\): declare its kind in stages.postprocess.kind, "
                                          rf"one of {', '.join(KINDS)}$"):
        choose_kind("auto", load_model(MODELS / "mobilenet_v1_0.25_128_quant.tflite"), Labels())
