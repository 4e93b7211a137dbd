"""The Edge TPU up to the hardware boundary: what `auto` chooses and why, the fallbacks, the slow-link warning,
and `devices` on a board laid out in a folder.

No test needs an Edge TPU, and none depends on whether this machine has its runtime: each sets up the runtime it
tests. Stand-ins built at test time go first on the app's library path: one `libedgetpu.so.1` that exports the
delegate entry points and answers like a runtime whose device is absent (no delegate), so the real
`load_delegate` path runs; one that cannot load, which hides any runtime the machine has. In this process, where
the library path is fixed, "no runtime" is the probe's answer, patched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.model.accelerator import (TPU_WAIT_S, MatchedPair, ModelChoice, choose, edgetpu_unavailable, installed_library,
                             slow_tpu_warning)
from app.config import load_settings
from app.devices import edgetpus, v4l2_cameras, v4l2_capture_cameras
from app.inference_lane import InferenceLane
from app.model.runner import ModelRunner
from app.pipeline import Pipeline
from conftest import MODELS, PET, PROJECT, FakeCamera

CPU_MODEL = MODELS / "mobilenet_v1_0.5_160_quant.tflite"
CLASSIFY = ["--pipeline", "classify", "--source", str(MODELS.parent / "images" / "cat.bmp"), "--labels",
            str(MODELS / "imagenet_labels.txt"), "--max-frames", "1", "--output", "jsonl:-"]


@pytest.fixture
def no_runtime_in_this_process(monkeypatch) -> Iterator[None]:
    """This process sees no Edge TPU runtime: the probe says so, and its cached verdict is forgotten around."""
    monkeypatch.setattr("app.model.accelerator.edgetpu_library_loads", lambda: False)
    edgetpu_unavailable.cache_clear()
    yield
    edgetpu_unavailable.cache_clear()


def _app(*args: str, library_dir: Path | None = None) -> subprocess.CompletedProcess:
    path = f"{library_dir}:/usr/bin:/bin" if library_dir else "/usr/bin:/bin"
    env = {"PATH": path, **({"LD_LIBRARY_PATH": str(library_dir)} if library_dir else {})}
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=PROJECT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_runtime_stand_ins_load_or_not_as_they_say(edgetpu_runtime_without_device, edgetpu_runtime_absent):
    def loads(library_path: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "import ctypes; ctypes.CDLL('libedgetpu.so.1')"],
                              env={"LD_LIBRARY_PATH": library_path}, capture_output=True, text=True, timeout=60)

    assert loads(str(edgetpu_runtime_without_device)).returncode == 0
    assert loads(str(edgetpu_runtime_absent)).returncode != 0
    # hidden even when a loadable runtime comes later in the search, as the system's does
    hidden = loads(f"{edgetpu_runtime_absent}:{edgetpu_runtime_without_device}")
    assert hidden.returncode != 0 and "libsmartcam_gone.so" in hidden.stderr


def test_auto_prefers_the_cpu_model_when_there_is_no_runtime(tmp_path, no_runtime_in_this_process):
    for name in (CPU_MODEL.name, CPU_MODEL.name.replace(".tflite", "_edgetpu.tflite")):
        shutil.copyfile(MODELS / name, tmp_path / name)
    tpu = tmp_path / "mobilenet_v1_0.5_160_quant_edgetpu.tflite"
    for given in (tmp_path / CPU_MODEL.name, tpu):
        choice = choose("auto", str(given), given, tmp_path)
        assert (choice.path, choice.accelerator) == (tmp_path / CPU_MODEL.name, "cpu")
        assert "libedgetpu.so.1 not found" in choice.reason
    assert choose("edgetpu:usb:0", str(tmp_path / CPU_MODEL.name), tmp_path / CPU_MODEL.name, tmp_path).path == tpu


def test_auto_with_a_runtime_but_no_device_runs_the_cpu_model(edgetpu_runtime_without_device):
    proc = _app(*CLASSIFY, "--model", str(CPU_MODEL), library_dir=edgetpu_runtime_without_device)
    assert proc.returncode == 0, proc.stderr
    assert '"class_id":286' in proc.stdout
    assert "accelerator cpu: mobilenet_v1_0.5_160_quant.tflite on the CPU: accelerator edgetpu: no Edge TPU " \
           "answered" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_edgetpu_required_but_no_device_is_waited_for_then_restarted(edgetpu_runtime_without_device):
    """At boot a USB accelerator answers late: it is waited for, then exit 1 (restarted), never 2 (not restarted)."""
    proc = _app(*CLASSIFY, "--model", str(CPU_MODEL), "--set", "accelerator=edgetpu:usb:0",
                library_dir=edgetpu_runtime_without_device)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "no Edge TPU answered" in errors[0] and "lsusb" in errors[0]
    attempts = int(errors[0].rpartition(", ")[2].split()[0])
    assert f"(waited {TPU_WAIT_S:g} s, {attempts} attempts)" in errors[0] and attempts >= 2
    assert proc.stderr.count(f"waiting up to {TPU_WAIT_S:g} s for it") == 1
    assert "opened" not in proc.stderr  # nothing ran on a CPU instead


def test_a_tpu_that_fails_mid_run_hands_over_to_the_cpu_model():
    """An invoke that fails (here: the real interpreter refusing while its input is referenced) on a TPU chosen by
    auto switches to the CPU model in reserve; the run carries on."""
    pipeline = Pipeline(load_settings("detect", None, PET), [], source=FakeCamera(pause=0.01))
    tpu_model = pipeline.model
    pipeline.runner.choice = ModelChoice(tpu_model.path, "edgetpu", "test", fallback=tpu_model.path,
                                         expected_ms=7.0)
    held = tpu_model.input_buffer()  # a live view of its tensor keeps the interpreter from invoking
    stats = pipeline.run(max_frames=8)
    assert held is not None  # still alive: it was for the whole run
    assert stats.processed == 8 and stats.drops["accelerator_lost"] == 1
    assert pipeline.model is not tpu_model and pipeline.runner.choice.accelerator == "cpu"
    assert stats.info["accelerator"] == "cpu"


def test_cameras_sharing_a_lane_fall_back_together_onto_one_cpu_model():
    """Two cameras on one lane (one runner, a stand-in Edge TPU with a CPU model in reserve): when the TPU fails
    for one, the runner loads the CPU model once and both cameras' stages move onto it."""
    settings = load_settings("detect", None, PET)
    runner = ModelRunner.load(settings, 1)
    tpu_model = runner.model
    runner.choice = ModelChoice(tpu_model.path, "edgetpu", "test", fallback=tpu_model.path)
    lane = InferenceLane(runner)
    pipelines = [Pipeline(settings, [], source=FakeCamera(pause=0.01), lane=lane) for _ in range(2)]
    held = tpu_model.input_buffer()  # a live view of its tensor keeps the interpreter from invoking
    runs = [threading.Thread(target=pipeline.run, kwargs={"max_frames": 8}) for pipeline in pipelines]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(30)
    assert held is not None
    assert [pipeline.stats.processed for pipeline in pipelines] == [8, 8]
    assert pipelines[0].model is pipelines[1].model is runner.model is not tpu_model
    assert runner.choice.accelerator == "cpu"
    assert [pipeline.stats.info["accelerator"] for pipeline in pipelines] == ["cpu", "cpu"]


def test_slow_tpu_is_called_out():
    choice = ModelChoice(Path("m_edgetpu.tflite"), "edgetpu", "", expected_ms=7.6)
    assert slow_tpu_warning(choice, 8.0) is None
    warning = slow_tpu_warning(choice, 38.0)
    assert warning is not None and "5x" in warning and "USB 2" in warning
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


def test_devices_command_says_how_to_install_a_missing_runtime(edgetpu_runtime_absent):
    proc = _app("devices", library_dir=edgetpu_runtime_absent)
    assert proc.returncode == 0 and "cameras:" in proc.stdout and "edge tpus:" in proc.stdout
    assert "edge tpu runtime: no Edge TPU runtime (libedgetpu.so.1 not found; install the Edge TPU runtime with " \
           "./install.sh --coral)" in proc.stdout


def test_the_matched_pair_is_checked_before_the_tpu_is_used():
    pair = MatchedPair.read()
    assert pair.library_version.startswith("16.0tf") and pair.interpreter_package == "ai-edge-litert"
    matched = (pair.interpreter_package, pair.interpreter_version)
    assert pair.problem(("libedgetpu1-std", pair.library_version), matched) is None
    assert pair.problem(None, ("ai-edge-litert", "9.9")) is None  # a hand-built library cannot be checked
    coral_own = pair.problem(("libedgetpu1-std", "16.0"), matched)
    assert coral_own is not None and "crashes with TFLite 2.12" in coral_own and "./install.sh --coral" in coral_own
    newer = pair.problem(("libedgetpu1-max", pair.library_version), ("ai-edge-litert", "2.3.0"))
    assert newer is not None and f"needs ai-edge-litert {pair.interpreter_version}, not ai-edge-litert 2.3.0" in newer


def test_the_installed_runtime_package_is_read_from_dpkg(tmp_path, monkeypatch):
    """dpkg as on a board after ./install.sh --coral: libedgetpu1-std installed, -max known but removed."""
    (tmp_path / "dpkg-query").write_text(
        '#!/bin/sh\ncase "$4" in\n'
        '  libedgetpu1-std) printf "install ok installed 16.0tf2.19.1" ;;\n'
        '  libedgetpu1-max) printf "deinstall ok config-files 16.0tf2.19.1" ;;\n'
        '  *) echo "dpkg-query: no packages found matching $4" >&2; exit 1 ;;\n'
        'esac\n')
    (tmp_path / "dpkg-query").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert installed_library(("libedgetpu1-max", "libedgetpu1-std")) == ("libedgetpu1-std", "16.0tf2.19.1")
    assert installed_library(("libedgetpu1-max",)) is None
    assert installed_library(("libedgetpu1-other",)) is None
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no dpkg at all (not Debian)
    assert installed_library(("libedgetpu1-std",)) is None
