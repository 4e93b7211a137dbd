"""The Stage interface and what every stage gets when the pipeline starts.

A Stage is built from its parameters (a model from `app.config`), started once with the StageContext, asked to
`process` each frame in the inference lane, and stopped once. Returning None from `process` drops the frame.
Work on one frame that needs neither the model's tensors nor the stage's state across frames may be done ahead in
`prepare`, which the capture lane calls on every frame: there it runs on a core the model's `invoke()` leaves
idle instead of lengthening the inference lane.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from app.config import CameraConfig
from app.frame import Frame
from app.model.manifest import Labels
from app.model.runtime import LoadedModel
from app.scene.tracker import ObjectEvent


@dataclass
class StageContext:
    """What the pipeline gives its stages: the model and its labels, and the camera's settings (zones, lines)."""

    model: LoadedModel
    labels: Labels
    camera: CameraConfig = field(default_factory=CameraConfig)


class Stage(ABC):
    name: ClassVar[str]

    def __init__(self, params: Any) -> None:
        self.params = params

    def start(self, ctx: StageContext) -> None:
        """Prepare for the first frame (read tensor shapes, build anchors)."""

    def prepare(self, frame: Frame) -> None:
        """In the capture lane, before the frame is handed over: attach what `process` can use ready-made. It must
        not touch the interpreter, and `process` must still work on a frame it did not see."""

    @abstractmethod
    def process(self, frame: Frame) -> Frame | None:
        """Do this stage's job on one frame; None drops it."""

    def finish(self) -> list[ObjectEvent]:
        """The run is ending (in the inference lane, after its last frame): the object events it closes (the
        tracks it ends), for the output lane to hand to the publishers after the last frame."""
        return []

    def stop(self) -> None:
        """Release what `start` took."""

    def reconfigure(self, params: Any, ctx: StageContext) -> None:
        """A reload changed its parameters (in the inference lane, between two frames): by default it starts
        again with them; a stage with state across frames keeps it."""
        self.stop()
        self.params = params
        self.start(ctx)
