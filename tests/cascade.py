"""The pose cascade for the crop and person_down tests: YOLOv8n (the shared person detector; no COCO SSD is shared)
then, optionally, track, then the crop stage with MoveNet Lightning, built as a camera builds them and fed frames
with the stamps a test gives (no clock, no sleeping)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from app.config import load_settings
from app.frame import Frame
from app.model.runner import ModelRunner
from app.stages import build_stages
from app.stages.base import Stage, StageContext
from app.stages.crop import Crop
from conftest import MODELS

YOLO = MODELS / "yolov8n_full_integer_quant.tflite"
MOVENET = MODELS / "movenet_single_pose_lightning_ptq.tflite"


def cascade_file(directory: Path, crop: dict, track: dict | None = None) -> Path:
    """`directory/cascade.yaml`: YOLOv8n letterboxed (persons and the rest of COCO at 0.4), `track` when given,
    and the crop stage with MoveNet and the `crop` parameters."""
    stages: list[dict] = [{"preprocess": {"resize": "letterbox", "float_range": [0, 1]}},
                          {"inference": {"model": str(YOLO), "labels": str(MODELS / "coco80_labels.txt")}},
                          {"postprocess": {"kind": "yolo", "min_score": 0.4}}]
    if track is not None:
        stages.append({"track": track})
    stages.append({"crop": {"model": str(MOVENET), **crop}})
    path = directory / "cascade.yaml"
    path.write_text(yaml.safe_dump({"description": "the pose cascade, for a test", "stages": stages}))
    return path


class Cascade:
    """The stages of a cascade file, started; `frame(image, t)` runs them on one image stamped `t` seconds, and
    `invocations` counts the second model's runs."""

    def __init__(self, directory: Path, crop: dict, track: dict | None = None) -> None:
        settings = load_settings(str(cascade_file(directory, crop, track)), None, [])
        runner = ModelRunner.load(settings)
        self.stages: list[Stage] = build_stages(settings)
        context = StageContext(runner.model, runner.labels, settings.device.camera)
        for stage in self.stages:
            stage.start(context)
        self.crop = next(stage for stage in self.stages if isinstance(stage, Crop))
        self.invocations = 0
        self._seq = 0
        assert self.crop.runner is not None
        model = self.crop.runner.model
        invoke = model.invoke

        def counted() -> None:
            self.invocations += 1
            invoke()
        model.invoke = counted  # type: ignore[method-assign]

    def frame(self, image: np.ndarray, t: float = 0.0) -> Frame:
        self._seq += 1
        frame = Frame(image, self._seq, "test", t_capture=t)
        for stage in self.stages:
            processed = stage.process(frame)
            assert processed is not None, stage.name
            frame = processed
        return frame
