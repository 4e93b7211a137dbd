"""Checks that need real hardware: a Coral Edge TPU, a USB camera. Marked `hardware`: deselected by default
(pyproject's `-m "not hardware"`), run on a board with `.venv/bin/python -m pytest -m hardware`, and there each
FAILS, saying what it needs, when that hardware is missing: selecting them is the claim that it is present.
None is counted as coverage of the code above the boundary, which the rest of the suite tests without it."""

from __future__ import annotations

import pytest
import yaml

from app.model.accelerator import edgetpu_unavailable
from app.cameras import Cameras
from app.config import load_cameras, load_settings
from app.devices import edgetpus, v4l2_capture_cameras
from app.pipeline import Pipeline
from conftest import MODELS, PET, run_model

pytestmark = pytest.mark.hardware


def test_the_edge_tpu_gives_the_known_answer():
    problem = edgetpu_unavailable()
    assert problem is None, f"needs the Edge TPU runtime matched to the interpreter: {problem}"
    assert edgetpus(), "needs a Coral Edge TPU: none on USB (lsusb: 18d1:9302 or 1a6e:089a) or PCIe (/dev/apex_N)"
    frame = run_model("mobilenet_v1_0.5_160_quant_edgetpu.tflite", "cat.bmp", "imagenet_labels.txt",
                      postprocess={"min_score": 0}, accelerator="edgetpu")
    assert frame.classes[0].class_id == 286


def test_a_usb_camera_gives_frames():
    cameras = v4l2_capture_cameras()
    assert cameras, "needs a USB (V4L2) camera: none in /sys/class/video4linux"
    settings = load_settings("detect", None, [*PET, f"camera.source={cameras[0].path}"])
    stats = Pipeline(settings, []).run(max_frames=10)
    assert stats.processed == 10


def test_two_cameras_on_one_edge_tpu_model_share_one_lane(tmp_path):
    """The classifier's CPU file named, `accelerator: edgetpu`: both cameras get its _edgetpu twin, loaded once."""
    assert edgetpus(), "needs a Coral Edge TPU: none on USB (lsusb: 18d1:9302 or 1a6e:089a) or PCIe (/dev/apex_N)"
    config = tmp_path / "cameras.yaml"
    config.write_text(yaml.safe_dump({"models": {"dir": str(MODELS)}, "accelerator": "edgetpu", "cameras": [
        {"name": name, "source": "pattern", "fps": 1000, "pipeline": "classify"} for name in ("left", "right")]}))
    runs = load_cameras("classify", config, [f"stages.inference.model={MODELS / 'mobilenet_v1_0.5_160_quant.tflite'}",
                                             f"stages.inference.labels={MODELS / 'imagenet_labels.txt'}"])
    cameras = Cameras(runs, lambda settings: [])
    assert len(cameras.lanes) == 1 and cameras.running[0].model is cameras.running[1].model
    processed = [stats.processed for stats in cameras.run(max_frames=50)]
    assert processed == [50, 50]
