"""The robot output seam: what the inference lane hands each frame's results to, the moment they exist.

A `RobotOutput` is called from the inference lane itself, before the frame goes to the output lane (overlay,
MQTT, the page), so a robot hears of a frame as soon as it is decoded. `send` must therefore never block: it sends
without waiting (a datagram, a ZeroMQ message, a bounded queue) and counts what it could not send as a drop.
UDP, ZeroMQ and the Python API (`app.api`) are its implementations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from app.config import PipelineConfig
from app.frame import Frame
from app.metrics import Stats


@dataclass(frozen=True)
class RobotContext:
    """What a robot output needs to know about the run it serves."""

    camera: str
    pipeline: str
    #: header.frame_id: the camera's `frame_id`, or its name
    frame_id: str
    #: the model's class ids and names (the class map a LabelInfo carries)
    labels: dict[int, str]
    stats: Stats
    #: the pipeline's results are classes, not boxes, as its model's kind produces
    classes: bool = False
    #: the score below which no result is sent (LabelInfo's threshold)
    threshold: float = 0.0


def score_threshold(pipeline: PipelineConfig) -> float:
    """The score below which a pipeline sends no result: postprocess's `min_score`, or the filter's when stricter."""
    stricter = pipeline.filter.min_score if pipeline.filter and pipeline.filter.min_score is not None else 0.0
    return max(pipeline.postprocess.min_score, stricter)


class RobotOutput(ABC):
    def start(self, ctx: RobotContext) -> None:
        """Open the socket; called once, before the first frame."""

    @abstractmethod
    def send(self, frame: Frame) -> None:
        """One processed frame, from the inference lane: send without blocking; count a failure, never raise one."""

    def close(self) -> None:
        """Release the socket; called once when the run ends."""
