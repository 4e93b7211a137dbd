"""`python -m app` as a user runs it: exit codes (0 done, 2 bad usage/config, 1 run-time failure) and output.

Covers `validate`, `list`, the done-when classify run on cat.bmp with JSON lines to stdout and to a file, every
user mistake as one `error: ` line without a traceback (broken model, Edge TPU model or accelerator without the
Edge TPU runtime, missing model/source files, named models not downloaded, bad config, bad `--set`/`--output`),
`--debug` tracebacks and `--help` for each command. Real models and images from ../shared; no mocks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.model.manifest import manifest
from conftest import CAT_BREEDS, IMAGES, MODELS, PET_LABEL_FILE, PET_MODEL, PROJECT, app, error_line, imread

CAT = IMAGES / "cat.bmp"
CLASSIFY_CAT = ["--pipeline", "classify", "--source", CAT, "--model", MODELS / "mobilenet_v2_1.0_224_quant.tflite",
                "--labels", MODELS / "imagenet_labels.txt", "--max-frames", "1"]
RESULT_KEYS = {"pipeline", "source", "seq", "ts", "stamp", "size", "detections", "classes", "timing_ms"}
TIMING_KEYS = {"preprocess", "inference", "postprocess", "exposure_to_result"}


def bad_config(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text("camera: {sorce: x}\n")
    return path


# --- validate and list -------------------------------------------------------------------------------------------


def test_validate_shipped_files():
    proc = app("validate")
    assert (proc.returncode, proc.stdout) == (0, "ok\n") and "error" not in proc.stderr, proc.stderr


def test_validate_bad_config_is_one_line(tmp_path):
    config = bad_config(tmp_path)
    line = error_line(app("validate", "--config", config), 2)
    assert line.startswith(f"error: {config}: camera.sorce: ") and "did you mean camera.source?" in line


def test_validate_refuses_a_source_a_run_refuses_and_warns_of_one_not_there_yet(tmp_path):
    line = error_line(app("validate", "--pipeline", "classify", "--set", "camera.source=ftp://admin:S3cret@cam/x",
                          "--set", f"models.dir={MODELS}"), 2)
    assert line.startswith("error: camera.source: 'ftp://***@cam/x': unknown scheme ftp://") and "S3cret" not in line
    missing = tmp_path / "usb" / "clip.mp4"
    proc = app("validate", "--pipeline", "classify", "--set", f"camera.source={missing}", "--set",
               f"models.dir={MODELS}")  # the run's model is there: the source alone is in question
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr
    assert f"warning: camera.source: {missing} is not there: a run waits for it to appear" in proc.stderr


def test_validate_refuses_what_the_run_refuses_at_start_a_model_not_downloaded(tmp_path):
    run = error_line(app("--pipeline", "classify", "--source", "pattern", "--max-frames", "1", "--set",
                         f"models.dir={tmp_path}"), 2)
    validate = error_line(app("validate", "--pipeline", "classify", "--set", f"models.dir={tmp_path}"), 2)
    assert validate == run == ("error: model mobilenet_v2_1.0_224_quant is not downloaded: "
                               f"{sys.executable} -m app models pull mobilenet_v2_1.0_224_quant")


def test_validate_refuses_the_model_of_each_camera_listed(tmp_path):
    config = tmp_path / "cameras.yaml"
    config.write_text(f"models: {{dir: {MODELS}}}\ncameras:\n  - {{name: front, source: pattern, pipeline: classify}}\n"
                      "  - {name: back, source: pattern, pipeline: detect}\n")
    line = error_line(app("validate", "--config", config), 2)  # no --pipeline: the cameras name theirs
    assert line == ("error: model ssd_mobilenet_v2_coco_quant_postprocess is not downloaded: "
                    f"{sys.executable} -m app models pull ssd_mobilenet_v2_coco_quant_postprocess --config {config}")


def test_validate_takes_the_runs_model_and_labels(tmp_path):
    proc = app("validate", "--pipeline", "detect", "--model", PET_MODEL, "--labels", PET_LABEL_FILE)
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr
    assert "Abyssinian" in proc.stderr  # the labels given were read: publish.labels are not among them
    line = error_line(app("validate", "--pipeline", "detect", "--model", tmp_path / "gone.tflite"), 2)
    assert line == f"error: {tmp_path / 'gone.tflite'}: model file not found"
    line = error_line(app("validate", "--pipeline", "detect", "--model", PET_MODEL, "--labels", tmp_path / "no.txt"), 2)
    assert str(tmp_path / "no.txt") in line


@pytest.mark.parametrize("models_dir, present", [
    (None, set()),
    (MODELS, {"mobilenet_v2_1.0_224_quant", "face_detection_short_range", "deeplabv3_mnv2_pascal_quant",
              "movenet_single_pose_lightning_ptq"})],
    ids=["empty", "shared"])
def test_list_shows_pipelines_and_models(tmp_path, models_dir, present):
    models_dir = models_dir or tmp_path
    proc = app("list", "--set", f"models.dir={models_dir}")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for pipeline in ("detect", "classify", "face"):
        assert any(line.split()[:1] == [pipeline] and "(model: " in line for line in lines), proc.stdout
    assert f"models (in {models_dir}):" in lines
    for name in manifest():
        row = next(line for line in lines if line.split()[:1] == [name])
        missing = f"missing: {sys.executable} -m app models pull {name}"  # as this interpreter runs it
        assert row.endswith("present" if name in present else missing), row


# --- a real run --------------------------------------------------------------------------------------------------


def test_classify_cat_prints_one_json_line():
    proc = app(*CLASSIFY_CAT, "--output", "jsonl:-")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    result = json.loads(lines[0])
    assert set(result) == RESULT_KEYS and set(result["timing_ms"]) == TIMING_KEYS
    assert (result["classes"][0]["label"], result["classes"][0]["class_id"]) == ("Egyptian cat", 286)
    height, width = imread(CAT).shape[:2]
    assert (result["pipeline"], result["source"], result["seq"], result["size"]) == ("classify", "cam0", 1,
                                                                                     [width, height])
    assert result["detections"] == [] and all(v >= 0 for v in result["timing_ms"].values())


def test_detect_on_a_clip_prints_sixty_lines_of_cats(cat_clip):
    proc = app("--pipeline", "detect", "--source", cat_clip, "--model", PET_MODEL, "--labels", PET_LABEL_FILE,
               "--max-frames", "60", "--output", "jsonl:-")
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == 60 and [r["seq"] for r in results] == list(range(1, 61))
    with_cat = [r for r in results if r["detections"] and r["detections"][0]["label"] in CAT_BREEDS]
    assert len(with_cat) >= 45, [r["detections"][:1] for r in results]


def test_jsonl_file_is_appended_to(tmp_path):
    out = tmp_path / "results.jsonl"
    for _ in range(2):
        proc = app(*CLASSIFY_CAT, "--output", f"jsonl:{out}")
        assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["classes"][0]["class_id"] for r in results] == [286, 286]


# --- failures: one line, the right exit code ---------------------------------------------------------------------


def test_broken_model_fails_at_run_time():
    model = MODELS / "invalid_model_invoking_error.tflite"
    line = error_line(app(*CLASSIFY_CAT, "--model", model), 1)
    assert str(model) in line and "fake-op-double" in line


@pytest.mark.parametrize("extra", [[], ["--set", "accelerator=cpu"]], ids=["auto", "cpu"])
def test_edgetpu_model_without_tpu_names_the_cpu_model(tmp_path, extra, edgetpu_runtime_absent):
    model = tmp_path / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"  # alone: no CPU variant beside it
    model.write_bytes((MODELS / model.name).read_bytes())
    line = error_line(app(*CLASSIFY_CAT, "--model", model, *extra, library_dir=edgetpu_runtime_absent), 2)
    assert "mobilenet_v1_0.25_128_quant.tflite" in line and "./install.sh --coral" in line


def test_auto_without_tpu_runs_the_cpu_variant_and_says_why(edgetpu_runtime_absent):
    proc = app(*CLASSIFY_CAT, "--model", MODELS / "mobilenet_v1_0.5_160_quant_edgetpu.tflite", "--output", "jsonl:-",
               library_dir=edgetpu_runtime_absent)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["classes"][0]["class_id"] == 286
    assert ("accelerator cpu: mobilenet_v1_0.5_160_quant.tflite on the CPU: no Edge TPU runtime (libedgetpu.so.1 "
            "not found") in proc.stderr


def test_edgetpu_accelerator_without_runtime(edgetpu_runtime_absent):
    line = error_line(app(*CLASSIFY_CAT, "--set", "accelerator=edgetpu", library_dir=edgetpu_runtime_absent), 2)
    assert "libedgetpu.so.1" in line and "./install.sh --coral" in line


@pytest.mark.parametrize("args, expected", [
    (["--model", "{tmp}/missing.tflite"], ["{tmp}/missing.tflite", "not found"]),
    (["--pipeline", "detect", "--model", "ssd_mobilenet_v1_coco_quant_postprocess", "--set", "models.dir={tmp}"],
     [": {python} -m app models pull ssd_mobilenet_v1_coco_quant_postprocess"]),
    (["--source", "ftp://{tmp}/shot.bmp"], ["ftp://{tmp}/shot.bmp", "unknown scheme ftp://"]),
    (["--config", "{tmp}/bad.yaml"], ["{tmp}/bad.yaml: camera.sorce: "]),
    (["--set", "camera.width=wide"], ["camera.width", "'wide'"]),
    (["--output", "bogus"], ["--output bogus"]),
    (["--max-frames", "0"], ["--max-frames"]),
], ids=["model-file", "named-model", "source-scheme", "unknown-key", "wrong-type", "output", "max-frames"])
def test_usage_mistake_exits_2(tmp_path, args, expected):
    bad_config(tmp_path)
    line = error_line(app(*CLASSIFY_CAT, *(a.format(tmp=tmp_path) for a in args)), 2)
    for part in expected:
        assert part.format(tmp=tmp_path, python=sys.executable) in line


def test_debug_shows_the_traceback(tmp_path):
    proc = app(*CLASSIFY_CAT, "--model", tmp_path / "missing.tflite", "--debug")
    assert proc.returncode == 2 and "Traceback" in proc.stderr
    assert f"error: {tmp_path / 'missing.tflite'}" in proc.stderr


def test_a_source_file_not_there_is_waited_for_not_exit_2(tmp_path):
    """A disk not mounted yet is not a mistake in the files: the run waits, then classifies the image once there."""
    shot = tmp_path / "usb" / "cat.bmp"
    command = [sys.executable, "-m", "app", *map(str, CLASSIFY_CAT), "--source", str(shot), "--output", "jsonl:-",
               "--set", "camera.reconnect.initial_delay_s=0.05", "--set", "camera.reconnect.max_delay_s=0.1"]
    with subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as run:
        assert run.stderr is not None
        said = run.stderr.readline()
        while "not there" not in said and said:
            said = run.stderr.readline()
        assert f"{shot}: not there (a disk not mounted yet?)); retrying" in said
        shot.parent.mkdir()
        shutil.copy(CAT, shot)
        out, err = run.communicate(timeout=120)  # the safety net of a run that would wait on
    assert run.returncode == 0, err
    assert json.loads(out)["classes"][0]["class_id"] == 286 and "not there" not in err  # said once


# --- help --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command, options", [
    ("run", ["--pipeline", "--source", "--model", "--labels", "--max-frames", "--output", "--config", "--set",
             "--debug"]),
    ("validate", ["--pipeline", "--model", "--labels", "--config", "--set", "--debug"]),
    ("list", ["--config", "--set", "--debug"]),
])
def test_help(command, options):
    proc = app(command, "--help")
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: python -m app {command} "), proc.stderr
    for option in options:
        assert option in proc.stdout
