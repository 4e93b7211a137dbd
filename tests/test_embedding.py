"""Embeddings: a classifier cut at its pooled features gives them value for value, `kind: embedding` makes unit
vectors of any [1, D] output, the manifest's embedder is made when pulled or loaded, and a missing tensor is one
line. Checked with MobileNet v2 from shared/models; the reference features come from LiteRT's debug option that
keeps every tensor, used here only.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from app.errors import ConfigError, ModelError
from app.frame import Frame
from app.model.cut import cut_model, cut_origin
from app.model.digest import digests
from app.model.fetch import pull
from app.model.kinds.choose import choose_kind
from app.model.kinds.embedding import EMBEDDING, Embedding
from app.model.manifest import CutFrom, Labels, labels_from_metadata, manifest, resolve_model
from app.model.runtime import load_model
from conftest import IMAGES, MODELS, app, imread, run_model

CLASSIFIER = MODELS / "mobilenet_v2_1.0_224_quant.tflite"
POOLED = "MobilenetV2/Logits/AvgPool"
EMBEDDER = "mobilenet_v2_1.0_224_quant_embedding"


@pytest.fixture(scope="module")
def embedder(tmp_path_factory) -> Path:
    return cut_model(CLASSIFIER, POOLED, tmp_path_factory.mktemp("cut") / "embedder.tflite")


def _pixels(image: str) -> np.ndarray:
    return cv2.resize(imread(IMAGES / image), (224, 224))[np.newaxis]


def _invoke(interpreter: Interpreter, image: str) -> None:
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], _pixels(image))
    interpreter.invoke()


def _pooled_features_of_the_whole_classifier(image: str) -> np.ndarray:
    full = Interpreter(model_path=str(CLASSIFIER), experimental_preserve_all_tensors=True)
    _invoke(full, image)
    (pooled,) = [d["index"] for d in full.get_tensor_details() if d["name"] == POOLED]
    return full.get_tensor(pooled)


def _embedding(model: Path, image: str | np.ndarray) -> Embedding:
    frame = run_model(str(model), image, postprocess={"kind": "embedding"})
    result = frame.kind_results[EMBEDDING]
    assert isinstance(result, Embedding)
    return result


def _model(path: Path):  # the flatbuffer as the schema's objects
    return schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)


@pytest.mark.filterwarnings("ignore:Warning. Enabling .experimental_preserve_all_tensors.")
def test_the_cut_model_gives_the_classifiers_pooled_features_value_for_value(embedder):
    for image in ("cat.bmp", "grace_hopper.bmp"):
        cut = Interpreter(model_path=str(embedder))
        _invoke(cut, image)
        (output,) = cut.get_output_details()
        reference = _pooled_features_of_the_whole_classifier(image)
        assert output["name"] == POOLED and reference.shape == (1, 1, 1, 1280) and np.count_nonzero(reference) > 100
        assert np.array_equal(cut.get_tensor(output["index"]), reference), image


def test_the_cut_drops_what_follows_the_tensor_and_keeps_the_weights_byte_for_byte(embedder):
    whole, cut = _model(CLASSIFIER), _model(embedder)
    (whole_graph,), (cut_graph,) = whole.subgraphs, cut.subgraphs
    assert len(cut_graph.operators) == len(whole_graph.operators) - 3  # the logits' convolution, squeeze, softmax
    names = [t.name.decode() for t in cut_graph.tensors]
    assert not [name for name in names if "Conv2d_1c_1x1" in name or "Predictions" in name]
    whole_tensors = {t.name.decode(): t for t in whole_graph.tensors}
    for tensor in cut_graph.tensors:
        kept, source = cut.buffers[tensor.buffer].data, whole.buffers[whole_tensors[tensor.name.decode()].buffer].data
        assert (kept is None and source is None) or np.array_equal(kept, source), tensor.name
    assert embedder.stat().st_size < 0.7 * CLASSIFIER.stat().st_size
    assert not load_model(embedder).output_names and labels_from_metadata(embedder) == Labels()  # nor labels


def test_a_cut_is_reused_while_made_from_the_same_file_and_tensor_and_made_again_otherwise(tmp_path):
    target = tmp_path / "embedder.tflite"
    made = cut_model(CLASSIFIER, POOLED, target).stat().st_ino
    assert cut_model(CLASSIFIER, POOLED, target).stat().st_ino == made
    assert cut_origin(target) == {"sha256": digests(CLASSIFIER)["sha256"], "tensor": POOLED}
    changed = tmp_path / "classifier.tflite"
    changed.write_bytes(CLASSIFIER.read_bytes() + b"\0")  # another file: the same network, another checksum
    cut_model(changed, POOLED, target)
    assert cut_origin(target) == {"sha256": digests(changed)["sha256"], "tensor": POOLED}
    cut_model(changed, "MobilenetV2/Logits/Squeeze1", target)
    assert load_model(target).outputs[0].shape == (1, 1001)
    target.write_bytes(b"not a model")
    cut_model(CLASSIFIER, POOLED, target)
    assert load_model(target).outputs[0].shape == (1, 1, 1, 1280)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classifier.tflite", "embedder.tflite"]  # no part left


def test_a_model_without_the_tensor_is_one_line_naming_it_and_the_names_nearest_it(tmp_path):
    target = tmp_path / "embedder.tflite"
    with pytest.raises(ConfigError) as refused:
        cut_model(MODELS / "mobilenet_v1_0.25_128_quant.tflite", POOLED, target)
    assert str(refused.value) == (
        "mobilenet_v1_0.25_128_quant.tflite has no tensor MobilenetV2/Logits/AvgPool to cut at (its 89 tensors; the "
        "nearest names: MobilenetV1/Logits/AvgPool_1a/AvgPool, MobilenetV1/Logits/SpatialSqueeze, "
        "MobilenetV1/Logits/SpatialSqueeze1)")
    assert not target.exists()


def test_a_folder_the_cut_cannot_be_written_to_is_one_line(tmp_path):
    target = tmp_path / "absent" / "embedder.tflite"
    with pytest.raises(ModelError, match=rf"^{re.escape(str(target))}: cannot write the model cut from "
                                         r"mobilenet_v2_1.0_224_quant.tflite: No such file or directory$"):
        cut_model(CLASSIFIER, POOLED, target)


def test_an_embedding_is_a_unit_vector_on_the_frame_and_only_its_size_in_the_json(embedder):
    embedding = _embedding(embedder, "cat.bmp")
    assert embedding.vector.shape == (1280,) and embedding.vector.dtype == np.float32
    assert np.linalg.norm(embedding.vector) == pytest.approx(1.0, abs=1e-5)
    frame = Frame(imread(IMAGES / "cat.bmp"), 1, "test")
    frame.kind_results[EMBEDDING] = embedding
    line = json.dumps(frame.result("test"))
    assert json.loads(line)[EMBEDDING] == {"dim": 1280} and len(line) < 600


def test_any_one_by_d_output_declared_embedding_is_a_unit_vector_of_its_values(tmp_path):
    """The classifier cut at its logits: [1, 1001] quantised features (not a softmax), its largest the cat's."""
    logits = cut_model(CLASSIFIER, "MobilenetV2/Logits/Squeeze1", tmp_path / "logits.tflite")
    assert load_model(logits).outputs[0].shape == (1, 1001)
    embedding = _embedding(logits, "cat.bmp")
    assert np.linalg.norm(embedding.vector) == pytest.approx(1.0, abs=1e-5)
    assert int(np.argmax(embedding.vector)) == 286  # Egyptian cat


def test_a_softmax_declared_embedding_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^stages.postprocess.kind: mobilenet_v2_1.0_224_quant.tflite is not "
                                          r"embedding \(its outputs: \[1, 1001\]; an embedding model has one output "
                                          r"of features .*cut a classifier before its softmax\); it looks like "
                                          r"classifier\)$"):
        choose_kind("embedding", load_model(CLASSIFIER), Labels())


def test_the_same_photo_twice_is_cosine_one_and_another_photo_is_further(embedder):
    cat, again, person = (_embedding(embedder, image) for image in ("cat.bmp", "cat.bmp", "grace_hopper.bmp"))
    assert cat.similarity(again) == pytest.approx(1.0, abs=1e-6)
    flipped = _embedding(embedder, imread(IMAGES / "cat.bmp")[:, ::-1].copy())
    assert cat.similarity(person) < 0.5 < cat.similarity(flipped) < 0.99


def test_the_manifest_embedder_is_the_classifier_cut_made_when_pulled_and_when_loaded(tmp_path):
    entry = manifest()[EMBEDDER]
    assert entry.kind == "embedding" and entry.cut_from == CutFrom("mobilenet_v2_1.0_224_quant", POOLED)
    models_dir = tmp_path / "models"
    assert list(pull([entry], models_dir, str(MODELS))) == [
        "mobilenet_v2_1.0_224_quant.tflite: fetched and verified", "imagenet_labels.txt: fetched and verified",
        f"{EMBEDDER}.tflite: cut from mobilenet_v2_1.0_224_quant at {POOLED}"]
    assert cut_origin(models_dir / entry.file) == {"sha256": manifest()["mobilenet_v2_1.0_224_quant"].sha256,
                                                 "tensor": POOLED}
    (models_dir / entry.file).unlink()
    assert resolve_model(EMBEDDER, models_dir) == models_dir / entry.file and cut_origin(models_dir / entry.file)
    (models_dir / "mobilenet_v2_1.0_224_quant.tflite").unlink()
    (models_dir / entry.file).unlink()
    with pytest.raises(ConfigError, match=rf"^model {EMBEDDER} is not downloaded: .* -m app models pull {EMBEDDER}$"):
        resolve_model(EMBEDDER, models_dir)


def test_models_lists_the_embedder_and_a_run_by_its_name_embeds_under_the_manifests_kind(tmp_path):
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    for name in ("mobilenet_v2_1.0_224_quant.tflite", "imagenet_labels.txt"):
        shutil.copyfile(MODELS / name, models_dir / name)
    proc = app("--pipeline", "classify", "--source", IMAGES / "cat.bmp", "--model", EMBEDDER, "--set",
               f"models.dir={models_dir}", "--set", "stages.postprocess.kind=auto", "--max-frames", "1",
               "--output", "jsonl:-")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])[EMBEDDING] == {"dim": 1280}
    listing = app("models", "list", "--set", f"models.dir={models_dir}")
    assert [line.split() for line in listing.stdout.splitlines() if line.split()[:1] == [EMBEDDER]] == [
        [EMBEDDER, "embedding", "present"]]
