"""A pipeline file (`pipelines/NAME.yaml`), typed: one parameter model per inference-lane stage, the output lane's
blocks (overlay, publish), and the PipelineConfig they make."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import Field, field_validator

from app.config.base import ACCELERATOR_PATTERN, MAX_SIDE, Strict
from app.model.kinds import kind_choices

def thread_count(value: object) -> int | str:
    """A model's `threads`: 1 to 16, or auto; one clear problem for a wrong count, rather than one per member of
    the union."""
    if value == "auto":
        return "auto"
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 16:
        return value
    raise ValueError("expected a number of threads from 1 to 16, or auto")


def registered_kind(value: str) -> str:
    """A name of the kinds registry, read when the file is (a kind added there is accepted here)."""
    if value not in kind_choices():
        raise ValueError(f"expected one of {', '.join(kind_choices())}")
    return value


class PreprocessParams(Strict):
    resize: Literal["stretch", "letterbox", "crop"] = Field(
        "stretch", description="stretch: whole frame, aspect lost; letterbox: whole frame, padded; crop: centre"
    )
    float_range: tuple[float, float] = Field(
        (-1.0, 1.0), description="pixel range a float32 or int8 model expects: [-1, 1] or [0, 1] (YOLO)"
    )


class InferenceParams(Strict):
    model: str = Field(description="a named model (models/manifest.yaml) or a path to a .tflite file")
    labels: str | list[str] | None = Field(
        None, description="a label file, or the class names in order ([face]); default: the named model's (a "
        "model given by path is matched by checksum), else the model's metadata")
    accelerator: str | None = Field(
        None, pattern=ACCELERATOR_PATTERN, description="overrides config.yaml's accelerator for this pipeline"
    )
    threads: int | Literal["auto"] = Field(
        "auto", description="CPU threads for XNNPACK, 1 to 16; auto: from the cores and whether any output is on")

    _threads = field_validator("threads", mode="before")(classmethod(lambda cls, value: thread_count(value)))


class AnchorParams(Strict):
    """SSD anchor generation (MediaPipe's SsdAnchorsCalculator with fixed anchor size), e.g. BlazeFace."""

    strides: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        [8, 16, 16, 16], min_length=1, max_length=16, description="one per feature layer; equal strides share a grid")
    anchors_per_layer: int = Field(2, ge=1, le=64, description="anchors each layer adds per grid cell")
    offset: float = Field(0.5, description="anchor centre within its cell")
    box_scale: float | None = Field(None, gt=0, description="regressor units per input; default the input size")


class PostprocessParams(Strict):
    kind: str = Field(
        "auto", description="how to decode the outputs, a kind of app/model/kinds; auto: the model manifest's kind, "
        "else the one the output tensors plainly are"
    )
    min_score: float = Field(0.5, ge=0, le=1, description="drop results scoring below this")
    max_results: int = Field(20, ge=1, le=1000, description="keep at most this many (top-k for classifiers)")
    nms_iou: float = Field(0.3, gt=0, le=1,
                           description="kinds that decode raw boxes (BlazeFace): overlap above which boxes are merged")
    anchors: AnchorParams = AnchorParams()

    _kind_is_registered = field_validator("kind")(classmethod(lambda cls, value: registered_kind(value)))


class FilterParams(Strict):
    labels: list[str] | None = Field(None, description="keep only these labels (default: all)")
    min_score: float | None = Field(None, ge=0, le=1, description="a stricter score threshold than postprocess's")
    min_area: float = Field(0.0, ge=0, le=1, description="drop boxes smaller than this fraction of the frame")


class TrackParams(Strict):
    """The `track` stage: ids that stay with an object while it is in view (app/scene/tracker.py)."""

    iou: float = Field(0.3, gt=0, le=1, description="the least overlap of a detection with a track's predicted box "
                       "to continue it")
    min_hits: int = Field(3, ge=1, le=1000, description="frames in a row an object is seen before it is tracked "
                          "(its new event)")
    max_lost: int = Field(30, ge=1, le=100_000, description="inferred frames without it before a track ends")
    confirm_at_start: bool = Field(False, description="in the run's first min_hits frames a track is confirmed at "
                                   "once: the objects already in view when the camera starts get their ids (and "
                                   "new events) on its first frame, as SORT does")
    smooth: bool = Field(True, description="a tracked detection's box is its track's Kalman estimate, steadier than "
                         "the model's own (on MOT15: 49 false positives, 61 with the model's boxes)")
    coast: int = Field(0, ge=0, le=100_000, description="frames a confirmed track the detector missed is still "
                       "handed on, at the box its motion predicts, with its id and attributes {coasted: frames "
                       "lost}: an object missed for a frame or two stays in view (0: only what was detected)")
    stationary_s: float = Field(10.0, gt=0, le=86400, description="seconds without moving before an object is "
                                "stationary")


class PersonDownParams(Strict):
    """`person_down` (app/scene/person_down.py): a tracked person whose pose (the crop stage's keypoints) stays
    down for `down_s` seconds is one `person_down` object event, once per episode."""

    down_s: float = Field(3.0, gt=0, le=3600, description="seconds a person stays down before the event")
    angle: float = Field(60.0, gt=0, lt=90, description="degrees from vertical beyond which the torso (shoulders' "
                         "midpoint to hips') is lying")
    low_in_box: float = Field(0.6, gt=0, le=1, description="a head this far down its box (0 its top, 1 its bottom) "
                              "is down whatever the torso")
    min_keypoint_score: float = Field(0.15, ge=0, le=1, description="keypoints scoring below this are not used "
                                      "(MoveNet Lightning scores a half-seen body's joints about 0.15 to 0.3)")


class CropParams(Strict):
    """The `crop` stage (app/stages/crop.py): a second model on each chosen detection's crop, its result on the
    detection (`keypoints` for pose). With the track stage, only a new track or one whose box moved is run."""

    model: str = Field(description="the second model: a named model (models/manifest.yaml) or a .tflite path")
    kind: str = Field("auto", description="how to decode it, a kind of app/model/kinds; auto: the manifest's kind, "
                      "else the one its outputs plainly are")
    labels: list[str] | None = Field(None, description="crop only detections with these labels (default: all)")
    min_size: int = Field(32, ge=1, le=MAX_SIDE, description="crop only boxes at least this many pixels wide and "
                          "high")
    max_per_frame: int = Field(4, ge=1, le=100, description="at most this many crops a frame, the largest first")
    changed_iou: float = Field(0.7, gt=0, le=1, description="with the track stage: a track is run again once its "
                               "box's overlap with the box it was last run on falls below this")
    margin: float = Field(0.1, ge=0, le=1, description="the crop grows by this fraction of the box's size on each "
                          "side (within the frame)")
    preprocess: PreprocessParams = Field(PreprocessParams(resize="letterbox"),
                                         description="how the crop is fitted to the second model's input")
    accelerator: str | None = Field(None, pattern=ACCELERATOR_PATTERN,
                                    description="the second model's; default config.yaml's accelerator")
    threads: int | Literal["auto"] = Field("auto", description="the second model's CPU threads, 1 to 16, or auto")
    person_down: PersonDownParams | None = Field(None, description="with the track stage and a pose model: the "
                                                 "person_down event")

    _threads = field_validator("threads", mode="before")(classmethod(lambda cls, value: thread_count(value)))
    _kind_is_registered = field_validator("kind")(classmethod(lambda cls, value: registered_kind(value)))


class OverlayParams(Strict):
    """Drawn on a copy, and only when an output needs pixels (stream, snapshot)."""

    boxes: bool = Field(True, description="draw boxes with `label score`, a stable colour per label")
    banner: bool = Field(True, description="a banner with fps, inference ms and the time of the frame's stamp")
    zones: bool = Field(True, description="the camera's zones and lines, with their counts (with the track stage)")
    motion: bool = Field(False, description="the regions that moved (with motion gating)")
    segments: bool = Field(True, description="segmentation's classes tinted their label's colour, background not")
    poses: bool = Field(True, description="pose skeletons: a pose model's, and keypoints the crop stage found")
    keypoint_min_score: float = Field(0.3, ge=0, le=1, description="the score a keypoint needs to be drawn")


class SnapshotParams(Strict):
    labels: list[str] | None = Field(None, description="labels that take a snapshot (default: publish.labels)")
    min_score: float = Field(0.6, ge=0, le=1, description="the detection's score needed for a snapshot")


class PublishParams(Strict):
    """What matters to this pipeline's outputs: events, counts, snapshots, Home Assistant entities."""

    labels: list[str] | None = Field(None, description="the labels watched for events and counts (default: all)")
    min_score: float = Field(0.5, ge=0, le=1, description="detections counted for events")
    appear_frames: int = Field(2, ge=1, le=10_000, description="frames a new count must hold before an event fires")
    clear_frames: int = Field(5, ge=1, le=10_000, description="frames without a label before it is cleared")
    snapshots: SnapshotParams = SnapshotParams()


#: the inference lane's stages, in the order they run; each at most once; the first three are required
LANE_STAGES: dict[str, type[Strict]] = {
    "preprocess": PreprocessParams,
    "inference": InferenceParams,
    "postprocess": PostprocessParams,
    "filter": FilterParams,
    "track": TrackParams,
    "crop": CropParams,
}
REQUIRED_STAGES = ("preprocess", "inference", "postprocess")
#: the output lane's blocks: top-level keys of a pipeline file, beside `stages`
OUTPUT_BLOCKS: dict[str, type[Strict]] = {"overlay": OverlayParams, "publish": PublishParams}
#: `--set` keys that belong to the pipeline file rather than config.yaml
PIPELINE_KEYS = ("stages", *OUTPUT_BLOCKS)


@dataclass(frozen=True)
class PipelineConfig:
    """`pipelines/NAME.yaml`, typed: the inference lane's stages in their order, then the output lane's blocks."""

    name: str
    description: str
    preprocess: PreprocessParams
    inference: InferenceParams
    postprocess: PostprocessParams
    filter: FilterParams | None = None
    track: TrackParams | None = None
    crop: CropParams | None = None
    overlay: OverlayParams = field(default_factory=OverlayParams)
    publish: PublishParams = field(default_factory=PublishParams)

    @property
    def stages(self) -> list[tuple[str, Strict]]:
        """The inference lane's stages that this pipeline runs, in lane order, with their parameters."""
        present = {"preprocess": self.preprocess, "inference": self.inference, "postprocess": self.postprocess,
                   "filter": self.filter, "track": self.track, "crop": self.crop}
        return [(name, params) for name, params in present.items() if params is not None]

    @property
    def models(self) -> list[str]:
        """The models this pipeline runs: the inference stage's, then the crop stage's second model."""
        return [self.inference.model, *([self.crop.model] if self.crop else [])]

    def watched_labels(self) -> dict[str, list[str]]:
        """The labels this pipeline names, by the key that names them (for checking them against the model)."""
        keys = {"stages.filter.labels": self.filter.labels if self.filter else None,
                "stages.crop.labels": self.crop.labels if self.crop else None,
                "publish.labels": self.publish.labels, "publish.snapshots.labels": self.publish.snapshots.labels}
        return {key: labels for key, labels in keys.items() if labels}
