"""The Stage interface and what every stage gets when the pipeline starts.

A Stage is built from its parameters (a model from `app.config`), started once with the StageContext, asked to
`process` each frame in the inference lane, and stopped once. Returning None from `process` drops the frame.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from app.frame import Frame
from app.models import Labels
from app.runtime import LoadedModel


@dataclass
class StageContext:
    """What the pipeline loaded for its stages: the model and its labels."""

    model: LoadedModel
    labels: Labels


class Stage(ABC):
    name: ClassVar[str]

    def __init__(self, params: Any) -> None:
        self.params = params

    def start(self, ctx: StageContext) -> None:
        """Prepare for the first frame (read tensor shapes, build anchors)."""

    @abstractmethod
    def process(self, frame: Frame) -> Frame | None:
        """Do this stage's job on one frame; None drops it."""

    def stop(self) -> None:
        """Release what `start` took."""
