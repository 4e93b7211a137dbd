"""Checks that need real hardware: a Coral Edge TPU, a camera. Marked `hardware`; each skips, saying what it
needs, where that hardware is absent (as on CI), and none is counted as coverage of the code above the boundary,
which the rest of the suite tests without it."""

from __future__ import annotations

import pytest

from app.accelerator import edgetpu_unavailable
from app.config import load_settings
from app.devices import edgetpus, v4l2_capture_cameras
from app.pipeline import Pipeline
from conftest import PET, run_model

pytestmark = pytest.mark.hardware


@pytest.mark.skipif(not edgetpus() or edgetpu_unavailable() is not None,
                    reason="needs a Coral Edge TPU and its matched runtime (./install.sh --coral)")
def test_the_edge_tpu_gives_the_known_answer():
    frame = run_model("mobilenet_v1_0.5_160_quant_edgetpu.tflite", "cat.bmp", "imagenet_labels.txt",
                      postprocess={"min_score": 0}, accelerator="edgetpu")
    assert frame.classes[0].class_id == 286


@pytest.mark.skipif(not v4l2_capture_cameras(), reason="needs a USB (V4L2) camera")
def test_a_usb_camera_gives_frames():
    camera = v4l2_capture_cameras()[0].path
    stats = Pipeline(load_settings("detect", None, [*PET, f"camera.source={camera}"]), []).run(max_frames=10)
    assert stats.processed == 10
