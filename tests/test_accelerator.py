"""The Edge TPU up to the hardware boundary: what `auto` chooses and why, the fallbacks, the slow-link warning,
and `devices` on a board laid out in a folder.

There is no Edge TPU here. A stand-in `libedgetpu.so.1` built at test time exports the delegate entry points
and answers like a runtime whose device is absent (no delegate), so the real `load_delegate` path runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.accelerator import MatchedPair, ModelChoice, choose, installed_library, slow_tpu_warning
from app.config import load_settings
from app.devices import edgetpus, v4l2_cameras, v4l2_capture_cameras
from app.pipeline import Pipeline
from conftest import MODELS, PET, PROJECT
from test_pipeline import FlakyCamera

CPU_MODEL = MODELS / "mobilenet_v1_0.5_160_quant.tflite"
CLASSIFY = ["--pipeline", "classify", "--source", str(MODELS.parent / "images" / "cat.bmp"), "--labels",
            str(MODELS / "imagenet_labels.txt"), "--max-frames", "1", "--output", "jsonl:-"]
ABSENT_DEVICE_RUNTIME = r"""
#include <stddef.h>
/* The TFLite external-delegate entry points libedgetpu exports; no device answers, so no delegate. */
void *tflite_plugin_create_delegate(char **keys, char **values, size_t n, void (*report)(const char *)) {
    if (report) report("Failed to open device: no Edge TPU found");
    return NULL;
}
void tflite_plugin_destroy_delegate(void *delegate) { (void)delegate; }
"""


@pytest.fixture(scope="module")
def runtime_without_device(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("libedgetpu")
    (folder / "stub.c").write_text(ABSENT_DEVICE_RUNTIME)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(folder / "libedgetpu.so.1"), str(folder / "stub.c")],
                   check=True)
    return folder


def _app(*args: str, library_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", **({"LD_LIBRARY_PATH": str(library_dir)} if library_dir else {})}
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=PROJECT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_auto_prefers_the_cpu_model_when_there_is_no_runtime(tmp_path):
    for name in (CPU_MODEL.name, CPU_MODEL.name.replace(".tflite", "_edgetpu.tflite")):
        shutil.copyfile(MODELS / name, tmp_path / name)
    tpu = tmp_path / "mobilenet_v1_0.5_160_quant_edgetpu.tflite"
    for given in (tmp_path / CPU_MODEL.name, tpu):
        choice = choose("auto", str(given), given, tmp_path)
        assert (choice.path, choice.accelerator) == (tmp_path / CPU_MODEL.name, "cpu")
        assert "libedgetpu.so.1 not found" in choice.reason
    assert choose("edgetpu:usb:0", str(tmp_path / CPU_MODEL.name), tmp_path / CPU_MODEL.name, tmp_path).path == tpu


def test_auto_with_a_runtime_but_no_device_runs_the_cpu_model(runtime_without_device):
    proc = _app(*CLASSIFY, "--model", str(CPU_MODEL), library_dir=runtime_without_device)
    assert proc.returncode == 0, proc.stderr
    assert '"class_id":286' in proc.stdout
    assert "accelerator cpu: mobilenet_v1_0.5_160_quant.tflite on the CPU: accelerator edgetpu: no Edge TPU " \
           "answered" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_edgetpu_required_but_no_device_fails_fast_with_the_fix(runtime_without_device):
    proc = _app(*CLASSIFY, "--model", str(CPU_MODEL), "--set", "accelerator=edgetpu:usb:0",
                library_dir=runtime_without_device)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "no Edge TPU answered" in errors[0] and "lsusb" in errors[0]
    assert "opened" not in proc.stderr  # failed before the camera opened


def test_a_tpu_that_fails_mid_run_hands_over_to_the_cpu_model():
    """An invoke that fails (here: the real interpreter refusing while its input is referenced) on a TPU chosen by
    auto switches to the CPU model in reserve; the run carries on."""
    pipeline = Pipeline(load_settings("detect", None, PET), [], source=FlakyCamera())
    tpu_model = pipeline.model
    pipeline.choice = ModelChoice(tpu_model.path, "edgetpu", "test", fallback=tpu_model.path, expected_ms=7.0)
    tpu_model.held = tpu_model.input_buffer()  # a live view of its tensor keeps the interpreter from invoking
    stats = pipeline.run(max_frames=8)
    assert stats.processed == 8 and stats.drops["accelerator_lost"] == 1
    assert pipeline.model is not tpu_model and pipeline.choice.accelerator == "cpu"
    assert stats.info["accelerator"] == "cpu"


def test_slow_tpu_is_called_out():
    choice = ModelChoice(Path("m_edgetpu.tflite"), "edgetpu", "", expected_ms=7.6)
    assert slow_tpu_warning(choice, 8.0) is None
    warning = slow_tpu_warning(choice, 38.0)
    assert "5x" in warning and "USB 2" in warning
    assert slow_tpu_warning(ModelChoice(Path("m.tflite"), "cpu", ""), 80.0) is None


def test_devices_reads_cameras_and_edge_tpus_from_sysfs(tmp_path):
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    for node, name in (("video0", "UVC Camera (046d:0825)"), ("video10", "bcm2835-isp")):
        (sys_root / "class/video4linux" / node).mkdir(parents=True)
        (sys_root / "class/video4linux" / node / "name").write_text(name + "\n")
    for port, ids in (("1-1", ("18d1", "9302")), ("1-2", ("046d", "0825")), ("2-1", ("1a6e", "089a"))):
        usb = sys_root / "bus/usb/devices" / port
        usb.mkdir(parents=True)
        (usb / "idVendor").write_text(ids[0])
        (usb / "idProduct").write_text(ids[1])
    dev_root.mkdir()
    (dev_root / "apex_0").touch()
    cameras = v4l2_cameras(sys_root, dev_root)
    assert [(c.path, c.name) for c in cameras] == [(str(dev_root / "video0"), "UVC Camera (046d:0825)"),
                                                   (str(dev_root / "video10"), "bcm2835-isp")]
    assert [c.path for c in v4l2_capture_cameras(sys_root, dev_root)] == [str(dev_root / "video0")]
    assert [d.path for d in edgetpus(sys_root, dev_root)] == ["edgetpu:usb:0", "edgetpu:usb:1", "edgetpu:pci:0"]


def test_devices_command_runs_on_a_board_without_hardware():
    proc = _app("devices")
    assert proc.returncode == 0 and "cameras:" in proc.stdout and "edge tpus:" in proc.stdout
    assert "./install.sh --coral" in proc.stdout


def test_the_matched_pair_is_checked_before_the_tpu_is_used():
    pair = MatchedPair.read()
    assert pair.library_version.startswith("16.0tf") and pair.interpreter_package == "ai-edge-litert"
    matched = (pair.interpreter_package, pair.interpreter_version)
    assert pair.problem(("libedgetpu1-std", pair.library_version), matched) is None
    assert pair.problem(None, ("ai-edge-litert", "9.9")) is None  # a hand-built library cannot be checked
    coral_own = pair.problem(("libedgetpu1-std", "16.0"), matched)
    assert "crashes with TFLite 2.12" in coral_own and "./install.sh --coral" in coral_own
    newer = pair.problem(("libedgetpu1-max", pair.library_version), ("ai-edge-litert", "2.3.0"))
    assert f"needs ai-edge-litert {pair.interpreter_version}, not ai-edge-litert 2.3.0" in newer
    assert installed_library(pair.library_packages) is None  # dpkg has no libedgetpu on this machine
