"""The one sanitiser (topics, Home Assistant ids and snapshot file names spell a name alike) and the one
Edge TPU naming rule (file names, manifest names, and the shipped manifest following it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.model.accelerator import choose
from app.model.manifest import manifest
from app.names import cpu_name, edgetpu_name, safe_name
from app.outputs.mqtt import Topics, discovery_components, entity_documents
from app.outputs.snapshots import name_pattern, snapshot_name
from conftest import MODELS


@pytest.mark.parametrize(("text", "safe"), [
    ("person", "person"), ("traffic-light_2", "traffic-light_2"), ("a & b", "a_b"), ("a/b+c", "a_b_c"),
    ("  cat  ", "_cat_"), ("Café", "Caf_"), ("#", "_"), ("", "_"), ("a__b", "a__b"),
])
def test_safe_name_keeps_safe_characters_and_collapses_runs_of_the_others(text, safe):
    assert safe_name(text) == safe
    assert safe_name(safe) == safe  # what it makes is safe already


def test_topics_discovery_ids_and_snapshot_files_spell_a_name_alike():
    topics = Topics("smartcam", safe_name("front door"), "homeassistant", safe_name("my pipe"))
    assert topics.count("a & b") == "smartcam/front_door/my_pipe/count/a_b"
    assert "homeassistant/sensor/smartcam_front_door_my_pipe/a_b_count/config" in \
        entity_documents(topics, "x", discovery_components(topics, ["a & b"]))
    name = snapshot_name(0.0, "front door", "a & b")
    assert name.endswith("_front_door_a_b.jpg") and name_pattern("front door").fullmatch(name)


@pytest.mark.parametrize(("cpu", "tpu"), [
    ("ssd_mobilenet_v2_coco_quant_postprocess", "ssd_mobilenet_v2_coco_quant_postprocess_edgetpu"),
    ("mobilenet_v2_1.0_224_quant.tflite", "mobilenet_v2_1.0_224_quant_edgetpu.tflite"),
])
def test_the_edgetpu_naming_rule_goes_both_ways_for_manifest_and_file_names(cpu, tpu):
    assert edgetpu_name(cpu) == tpu and cpu_name(tpu) == cpu
    assert edgetpu_name(tpu) == tpu and cpu_name(cpu) == cpu  # each side maps to itself


def test_the_manifest_names_its_edgetpu_variants_by_the_rule():
    entries = manifest()
    variants = {name: entry.edgetpu_variant for name, entry in entries.items() if entry.edgetpu_variant}
    assert variants  # the shipped manifest has some
    for name, variant in variants.items():
        assert variant == edgetpu_name(name) and cpu_name(variant) == name and variant in entries


def test_auto_finds_either_side_of_a_model_file_by_the_rule(tmp_path, monkeypatch):
    monkeypatch.setattr("app.model.accelerator.edgetpu_unavailable", lambda: None)  # as on a board with the runtime
    cpu = tmp_path / "mobilenet_v1_0.5_160_quant.tflite"
    tpu = tmp_path / edgetpu_name(cpu.name)
    shutil.copyfile(MODELS / cpu.name, cpu)
    shutil.copyfile(MODELS / tpu.name, tpu)
    for given in (cpu, tpu):
        choice = choose("auto", str(given), given, tmp_path)
        assert (choice.path, choice.accelerator, choice.fallback) == (tpu, "edgetpu", cpu)


def test_a_model_file_without_its_other_side_is_not_paired(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("app.model.accelerator.edgetpu_unavailable", lambda: None)
    cpu = tmp_path / "mobilenet_v1_0.5_160_quant.tflite"
    shutil.copyfile(MODELS / cpu.name, cpu)
    choice = choose("auto", str(cpu), cpu, tmp_path)
    assert (choice.path, choice.accelerator) == (cpu, "cpu") and "no Edge TPU variant" in choice.reason


def test_auto_finds_either_side_of_a_named_model_by_the_rule(tmp_path, monkeypatch):
    """Named models pair through the manifest: `edgetpu_variant` one way, `cpu_name` the other."""
    monkeypatch.setattr("app.model.accelerator.edgetpu_unavailable", lambda: None)
    name = "mobilenet_v2_1.0_224_quant"
    cpu, tpu = tmp_path / f"{name}.tflite", tmp_path / f"{edgetpu_name(name)}.tflite"
    shutil.copyfile(MODELS / "mobilenet_v1_0.5_160_quant.tflite", cpu)  # stand-ins: only the files' kind matters
    shutil.copyfile(MODELS / "mobilenet_v1_0.5_160_quant_edgetpu.tflite", tpu)
    for ref, given in ((name, cpu), (edgetpu_name(name), tpu)):
        choice = choose("auto", ref, given, tmp_path)
        assert (choice.path, choice.accelerator, choice.fallback) == (tpu, "edgetpu", cpu)
