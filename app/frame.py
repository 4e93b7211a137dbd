"""Frame and the result types every stage and publisher share.

A Frame is one captured image plus what stages add to it. Results are plain dataclasses so decoders read like
pycoral's adapters and publishers turn them into the one JSON shape of a processed frame (`Frame.result`). What
kinds beyond boxes and classes produce goes in one slot keyed by result (`Frame.kind_results`), and what later
stages learn about a detection in its `attributes`, so a new kind adds no field here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from app.scene.motion import Motion
    from app.scene.tracker import ObjectEvent
    from app.scene.zones import SceneLayout

#: what a frame's stamp (`Frame.t_capture`) is: the moment the sensor exposed it (picamera2, a V4L2 buffer, a paced
#: clip), a stream's presentation time mapped onto the monotonic clock at its first frame, or, when the source knows
#: neither, the moment the read returned to Python
EXPOSURE, PRESENTATION, ARRIVAL = "exposure", "presentation", "arrival"

#: the channel order of a frame's image, kept as the source delivers it: OpenCV's (every camera, stream, file and
#: image read through it; picamera2's main stream) or RGB. Only the model-size image and the JPEG encoder convert.
BGR, RGB = "bgr", "rgb"


@dataclass(frozen=True)
class Detection:
    """One object: box in source-frame pixels (x0, y0, x1, y1), clipped to the frame; with the `track` stage, the
    id of its track once confirmed and the zones it is in."""

    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]
    track_id: int | None = None
    zones: tuple[str, ...] = ()
    #: what later stages add to this object (keypoints from a second model, a taught name), JSON-ready, each under
    #: its own key in `as_dict`
    attributes: dict[str, Any] = field(default_factory=dict, hash=False)

    def as_dict(self) -> dict:
        out: dict = {
            "label": self.label,
            "class_id": self.class_id,
            "score": round(self.score, 4),
            "box": [round(v, 1) for v in self.box],
        }
        if self.track_id is not None:
            out["track_id"] = self.track_id
            out["zones"] = list(self.zones)
        out.update(self.attributes)
        return out


@dataclass(frozen=True)
class Classification:
    """One class of a classifier's top-k."""

    label: str
    class_id: int
    score: float

    def as_dict(self) -> dict:
        return {"label": self.label, "class_id": self.class_id, "score": round(self.score, 4)}


class KindResult(Protocol):
    """What a kind beyond boxes and classes puts on a frame (segments and their mask, poses, an embedding)."""

    def as_json(self) -> Any:
        """Its compact JSON, under its key in `Frame.result`; arrays (a mask) stay on the object."""


@dataclass(frozen=True)
class InputGeometry:
    """How the model's input maps onto the source frame, so decoders can return source pixels.

    A point (u, v) normalised to the model input (0..1) is at
    (u * scale_x + offset_x, v * scale_y + offset_y) in the source frame; stretch, letterbox and crop are all
    this affine map with different numbers.
    """

    frame_width: int
    frame_height: int
    scale_x: float
    scale_y: float
    offset_x: float = 0.0
    offset_y: float = 0.0

    def boxes_to_source(self, boxes: np.ndarray) -> np.ndarray:
        """Map normalised (N, 4) boxes as x0, y0, x1, y1 to source pixels, clipped to the frame."""
        out = np.empty_like(boxes, dtype=np.float64)
        out[:, 0::2] = boxes[:, 0::2] * self.scale_x + self.offset_x
        out[:, 1::2] = boxes[:, 1::2] * self.scale_y + self.offset_y
        np.clip(out[:, 0::2], 0, self.frame_width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.frame_height, out=out[:, 1::2])
        return out


def wall_clock(monotonic: float) -> float:
    """A CLOCK_MONOTONIC time (seconds) on the wall clock, as the two clocks stand now."""
    return time.time() - (time.monotonic() - monotonic)


def has_area(boxes: np.ndarray) -> np.ndarray:
    """Which (N, 4) x0, y0, x1, y1 boxes still cover pixels after clipping (one in letterbox padding does not)."""
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


@dataclass(frozen=True)
class Scaled:
    """The frame fitted to the model's input, made in the capture lane (`Preprocess.prepare`): `pixels` (uint8,
    channels in `order`) go to the region `target` (x, y, width, height) of a `model_size` input; `geometry` maps
    the model's boxes back onto the frame."""

    pixels: np.ndarray
    order: str
    target: tuple[int, int, int, int]
    model_size: tuple[int, int]
    geometry: InputGeometry


@dataclass
class Frame:
    """One captured image (H x W x 3, uint8, channels in `order`) and what the stages add to it."""

    image: np.ndarray
    seq: int
    source: str
    order: str = BGR
    #: the frame's stamp, CLOCK_MONOTONIC seconds (the clock picamera2, V4L2 and ROS 2's steady time share), and
    #: what it is (`stamp`: EXPOSURE, PRESENTATION or ARRIVAL)
    t_capture: float = field(default_factory=time.monotonic)
    stamp: str = ARRIVAL
    #: the same instant on the wall clock (`time.time()`), for people and for robots whose clock is the wall's
    ts: float = field(default=0.0)
    lores: np.ndarray | None = None
    scaled: Scaled | None = None
    geometry: InputGeometry | None = None
    detections: list[Detection] = field(default_factory=list)
    classes: list[Classification] = field(default_factory=list)
    #: what the other kinds produce, by the key their JSON goes under in `result` (`segments`, `poses`, ...)
    kind_results: dict[str, KindResult] = field(default_factory=dict)
    #: what the model's kind decoded on this frame (its `produces`: detections, classes, segments, ...), once
    #: postprocess ran: tells a frame with nothing found from one not decoded (privacy fails closed on the latter)
    decoded: str | None = None
    #: with the `track` stage: the zones and lines in this frame's pixels, confirmed objects per zone now, and
    #: crossings per line and direction so far
    scene: SceneLayout | None = None
    #: with motion gating: what moved in this frame
    motion: Motion | None = None
    zone_counts: dict[str, int] = field(default_factory=dict)
    line_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    #: with the `track` stage: the tracked objects' events of this frame (new, update, end), in order
    objects: list[ObjectEvent] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.ts:
            self.ts = wall_clock(self.t_capture)

    @property
    def stamp_ns(self) -> int:
        """The stamp in CLOCK_MONOTONIC nanoseconds."""
        return round(self.t_capture * 1e9)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the source image."""
        return self.image.shape[1], self.image.shape[0]

    def result(self, pipeline: str) -> dict:
        """The one JSON shape every publisher emits for a processed frame (DESIGN.md, "One result, one shape")."""
        out: dict = {
            "pipeline": pipeline,
            "source": self.source,
            "seq": self.seq,
            "ts": round(self.ts, 6),
            "stamp": {"monotonic_ns": self.stamp_ns, "source": self.stamp},
            "size": list(self.size),
            "detections": [d.as_dict() for d in self.detections],
        }
        if self.classes:
            out["classes"] = [c.as_dict() for c in self.classes]
        out.update({key: value.as_json() for key, value in self.kind_results.items()})
        out["timing_ms"] = {k: round(v, 2) for k, v in self.timing.items()}
        return out
