"""Shared test helpers: where the real models and images are, and how to run the stages on one image."""

from __future__ import annotations

import socket
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.config import PostprocessParams, PreprocessParams
from app.frame import Frame
from app.models import Labels, read_labels
from app.runtime import load_model
from app.stages.base import StageContext
from app.stages.inference import Inference
from app.stages.postprocess import Postprocess
from app.stages.preprocess import Preprocess

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"
MODELS = SHARED / "models"
IMAGES = SHARED / "images"
#: `--set` overrides that put the pet SSD (a cat on cat.bmp and cat_720p.jpg is a cat breed) in the detect pipeline,
#: with every label watched
PET = [f"stages.inference.model={MODELS / 'ssd_mobilenet_v1_fine_tuned_pet.tflite'}",
       f"stages.inference.labels={MODELS / 'pet_labels.txt'}", "publish.labels=null"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_rgb(name: str) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(IMAGES / name))[..., ::-1])


def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def run_model(model: str, image: str | np.ndarray, labels: Labels | str | None = None,
              preprocess: dict | None = None, postprocess: dict | None = None, accelerator: str = "cpu") -> Frame:
    """preprocess → inference → postprocess on one image with a real model from shared/models."""
    loaded = load_model(MODELS / model, accelerator, 2)
    if isinstance(labels, str):
        labels = read_labels(MODELS / labels)
    ctx = StageContext(loaded, labels or Labels())
    stages = [Preprocess(PreprocessParams(**(preprocess or {}))), Inference(None),
              Postprocess(PostprocessParams(**(postprocess or {})))]
    for stage in stages:
        stage.start(ctx)
    frame = Frame(read_rgb(image) if isinstance(image, str) else image, 1, "test")
    for stage in stages:
        frame = stage.process(frame)
    return frame


@pytest.fixture(scope="session")
def cat_clip(tmp_path_factory) -> Path:
    """A 3-second 720p clip panning and zooming over cat_720p.jpg, made at run time (no media is committed)."""
    path = tmp_path_factory.mktemp("clips") / "cat_pan.mp4"
    image = cv2.imread(str(IMAGES / "cat_720p.jpg"))
    height, width = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (width, height))
    frames = 90
    for i in range(frames):
        zoom = 1 + 0.3 * i / (frames - 1)
        crop_w, crop_h = int(width / zoom), int(height / zoom)
        x0, y0 = int((width - crop_w) * i / (frames - 1)), (height - crop_h) // 2
        writer.write(cv2.resize(image[y0:y0 + crop_h, x0:x0 + crop_w], (width, height)))
    writer.release()
    return path
