"""The teach tests' shared toolkit, with the real models: YOLOv8n tracked and MobileNet v2 cut at its pooled features
in the crop stage (the fixtures `embedder` and `pipeline`, defined as `embedder_fixture` and `pipeline_fixture`: a
test module imports both, as pytest finds a fixture's own fixtures in the module using it, and its tests' parameters
named `pipeline` then shadow no import), a pan over a photo, the stages run as a camera runs them (`Run`),
`python -m app teach add` (`teach`), and the tracks that end as frames go through (`ended`). Test modules import
from here and never from each other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from app.config import load_settings
from app.frame import Frame
from app.model.cut import cut_model
from app.model.runner import ModelRunner
from app.scene.tracker import END
from app.stages import build_stages
from app.stages.base import Stage, StageContext
from app.stages.crop import Crop
from cascade import YOLO
from conftest import MODELS, app

POOLED = "MobilenetV2/Logits/AvgPool"
#: frames of a pan: enough that the track stage's min_hits (3) frames before a track is confirmed stay under 5%
PAN_FRAMES = 60


@pytest.fixture(scope="module", name="embedder")
def embedder_fixture(tmp_path_factory) -> Path:
    return cut_model(MODELS / "mobilenet_v2_1.0_224_quant.tflite", POOLED, tmp_path_factory.mktemp("cut") / "e.tflite")


def pipeline_file(folder: Path, embedder: Path, min_score: float) -> Path:
    """YOLOv8n letterboxed at `min_score`, tracked with the defaults, and the crop stage embedding persons, cats
    and beds with MobileNet v2 cut at its pooled features."""
    stages = [{"preprocess": {"resize": "letterbox", "float_range": [0, 1]}},
              {"inference": {"model": str(YOLO), "labels": str(MODELS / "coco80_labels.txt")}},
              {"postprocess": {"kind": "yolo", "min_score": min_score}},
              {"track": {}},
              {"crop": {"model": str(embedder), "kind": "embedding", "labels": ["person", "cat", "bed"]}}]
    path = folder / f"teach-{min_score}.yaml"
    path.write_text(yaml.safe_dump({"description": "detect, track, embed: for the teach tests", "stages": stages}))
    return path


@pytest.fixture(scope="module", name="pipeline")
def pipeline_fixture(tmp_path_factory, embedder) -> Path:
    """At YOLOv8n's usual 0.4 (shared/README's known answers)."""
    return pipeline_file(tmp_path_factory.mktemp("teach"), embedder, 0.4)


def pan(image: np.ndarray, frames: int = PAN_FRAMES, keep: float = 0.85) -> Iterator[np.ndarray]:
    """A window `keep` of the photo's size sliding from its top left corner to its bottom right, frame by frame."""
    height, width = image.shape[:2]
    crop_w, crop_h = int(width * keep), int(height * keep)
    for k in range(frames):
        x, y = round((width - crop_w) * k / (frames - 1)), round((height - crop_h) * k / (frames - 1))
        yield np.ascontiguousarray(image[y:y + crop_h, x:x + crop_w])


class Run:
    """The stages of `pipeline` with `gallery` as teach.gallery, started as a camera starts them; `frames` runs
    them over images stamped 10 per second."""

    def __init__(self, pipeline: Path, gallery: Path) -> None:
        settings = load_settings(str(pipeline), None, [f"teach.gallery={gallery}"])
        runner = ModelRunner.load(settings)
        self.stages: list[Stage] = build_stages(settings)
        self.context = StageContext(runner.model, runner.labels, settings.device.camera)
        for stage in self.stages:
            stage.start(self.context)
        self.crop = next(stage for stage in self.stages if isinstance(stage, Crop))
        self._seq = 0

    def frames(self, images: Iterator[np.ndarray]) -> list[Frame]:
        out = []
        for image in images:
            self._seq += 1
            frame = Frame(image, self._seq, "test", t_capture=self._seq / 10)
            for stage in self.stages:
                processed = stage.process(frame)
                assert processed is not None
                frame = processed
            out.append(frame)
        return out


#: frames without anything: the tracks of what was in view end
EMPTY = [np.zeros((480, 640, 3), np.uint8)] * 32


def ended(run: Run, images: list[np.ndarray]) -> list[tuple[str, int]]:
    """The (label, track id) of the tracks that end while `images`, then nothing, go through `run`."""
    return [(e.label, e.track_id) for f in run.frames(iter(images + EMPTY)) for e in f.objects if e.type == END]


def teach(gallery: Path, pipeline: Path, *args: str | Path) -> str:
    proc = app("teach", "add", *args, "--pipeline", pipeline, "--gallery", gallery)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
