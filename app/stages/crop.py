"""Crop: the `crop` stage, after track. A second model on each chosen detection's crop, its result on the detection.

The second model is loaded as the inference stage's is (`ModelRunner`: the same line with the fetch command when it
is missing, the same accelerator choice and CPU fallback), on the accelerator and threads the stage names, and
decoded by its kind (declared, else the manifest's, else what `auto` recognises), whatever the kind: a crop is the
detection's box grown by `margin`, fitted to the model's input by the preprocess stage's own code, with an
`InputGeometry` that maps the input back onto the source frame, so the kind's decoder gives source pixels. What the
kind gives goes on the detection's `attributes` (app/stages/crop_results.py: pose, `keypoints`). An embedding is not
an attribute (a vector is not JSON for people): the stage keeps each track's, and with a gallery of taught examples
(config.yaml's `teach:`) hands every frame's to the teach step (app/teach/verdicts.py), which names detections and
drops those taught `--not`. That step is part of this stage because the vectors are: they never leave it, and the
verdict on a track is made in the frame it is embedded, before the frame's events go out.

Which detections: those with `labels`, at least `min_size` pixels wide and high, at most `max_per_frame` a frame,
the largest first. With the track stage, only confirmed tracks (and, with taught examples, every detection of a
label taught, tracked or not), and of those only a new one or one whose box's overlap with the box it was last run
on fell below `changed_iou`: a track in between keeps its last result (that is how the stage saves the CPU on a
scene of steady tracks); a track the detector missed, handed on by the tracker at its predicted box (`coasted`), is
not run but keeps its last result; a track's result is forgotten when it ends (an embedder's last vector of it going
to the store of recent tracks, app/teach/recent.py, for look-alike search). With `person_down`, the track stage's
scene watches the poses (app/scene/person_down.py) and the frame's object events get its `person_down` events.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from app.config import PostprocessParams, Settings
from app.config.pipeline import CropParams, InferenceParams
from app.errors import ConfigError, ModelError
from app.frame import Detection, Frame, InputGeometry
from app.model.kinds.choose import KEY as POSTPROCESS_KIND
from app.model.kinds.choose import choose_kind
from app.model.kinds.embedding import EMBEDDING, Embedding
from app.model.runner import ModelRunner
from app.scene.association import iou_matrix
from app.scene.scene import Scene
from app.scene.tracker import END
from app.stages.base import Stage, StageContext
from app.stages.crop_results import on_a_detection
from app.stages.preprocess import Preprocess
from app.teach.recent import RecentTracks
from app.teach.run import recent_tracks, taught_verdicts
from app.teach.verdicts import Verdicts

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
#: the attribute of a detection the tracker hands on at its predicted box (track.coast): no model drew that box
COASTED = "coasted"


def second_model_settings(settings: Settings, params: CropParams) -> Settings:
    """`settings` with the crop's model, accelerator and threads in the inference stage's place: what
    `ModelRunner` loads, as it loads the first model."""
    inference = InferenceParams(model=params.model, accelerator=params.accelerator, threads=params.threads)
    return replace(settings, pipeline=replace(settings.pipeline, inference=inference))


def crop_region(box: Box, margin: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pixels (x0, y0, x1, y1) a crop takes: `box` grown by `margin` of its size on each side, to whole pixels
    outwards (a box of any size takes at least one), within the frame of `size` (width, height)."""
    x0, y0, x1, y1 = box
    grow_x, grow_y = (x1 - x0) * margin, (y1 - y0) * margin
    width, height = size
    return (max(0, math.floor(x0 - grow_x)), max(0, math.floor(y0 - grow_y)),
            min(width, math.ceil(x1 + grow_x)), min(height, math.ceil(y1 + grow_y)))


def shifted(geometry: InputGeometry, x0: int, y0: int, size: tuple[int, int]) -> InputGeometry:
    """The geometry of a crop taken at (x0, y0), as a geometry of the whole frame of `size`: the crop's pixels
    mapped to the source's."""
    return InputGeometry(size[0], size[1], geometry.scale_x, geometry.scale_y, geometry.offset_x + x0,
                         geometry.offset_y + y0)


@dataclass(frozen=True)
class Kept:
    """A track's last result: the box it was run on, the attributes it gave and its embedding (an embedder's)."""

    box: Box
    attributes: dict[str, Any]
    vector: np.ndarray | None = None


class Crop(Stage):
    name = "crop"
    params: CropParams

    def __init__(self, params: CropParams) -> None:
        super().__init__(params)
        self.runner: ModelRunner | None = None
        #: the track stage's scene, when the pipeline tracks (then only confirmed tracks are run)
        self.scene: Scene | None = None
        self._settings: Settings | None = None
        self._kept: dict[int, Kept] = {}
        #: with an embedder and a gallery of taught examples: the teach step
        self.verdicts: Verdicts | None = None
        #: with an embedder: the store each ended track's last vector goes to, for look-alike search
        self.recent: RecentTracks | None = None

    def load(self, settings: Settings, scene: Scene | None) -> None:
        """Load the second model for the run of `settings` (when the pipeline is built); `scene`: the track
        stage's, when the pipeline tracks."""
        self._settings, self.scene = settings, scene
        self.runner = ModelRunner.load(second_model_settings(settings, self.params))
        log.info("crop: %s on %s: %s", self.runner.model.path.name, self.runner.choice.accelerator,
                 self.runner.choice.reason)

    def start(self, ctx: StageContext) -> None:
        assert self.runner is not None, "loaded"
        model, labels = self.runner.model, self.runner.labels
        try:
            kind = choose_kind(self.params.kind, model, labels)
        except ConfigError as exc:  # the same check as postprocess's, named for this stage
            raise ConfigError(str(exc).replace(POSTPROCESS_KIND, "stages.crop.kind")) from None
        self._fit = Preprocess(self.params.preprocess)
        self._fit.start(StageContext(model, labels, ctx.camera))
        self._decode = kind.build(PostprocessParams(kind=kind.name, min_score=0.0, max_results=1), model, labels)
        self._result = on_a_detection(kind)
        self._ctx = ctx
        assert self._settings is not None, "loaded"
        verdicts = taught_verdicts(self._settings, model.path) if kind.name == EMBEDDING else None
        if verdicts is not None and self.verdicts is not None:
            verdicts.carry_on(self.verdicts)
        self.verdicts = verdicts
        self.recent = recent_tracks(self._settings, model.path) if kind.name == EMBEDDING else None
        if self.scene is not None:
            self.scene.watch_poses(self.params.person_down)

    def process(self, frame: Frame) -> Frame:
        chosen = self.chosen(frame.detections)
        detections, vectors = [], []
        for i, detection in enumerate(frame.detections):
            vector = None
            if i in chosen:
                attributes, vector = self.run_on(frame, detection.box)
                if detection.track_id is not None:
                    self._kept[detection.track_id] = Kept(detection.box, attributes, vector)
            elif detection.track_id in self._kept:
                attributes, vector = self._kept[detection.track_id].attributes, self._kept[detection.track_id].vector
            else:
                attributes = {}
            vectors.append(vector)
            detections.append(replace(detection, attributes={**detection.attributes, **attributes})
                              if attributes else detection)
        frame.detections = detections
        for event in frame.objects:
            if event.type == END and (kept := self._kept.pop(event.track_id, None)) is not None \
                    and kept.vector is not None and self.recent is not None:
                name = self.verdicts.name_of(event.track_id) if self.verdicts is not None else None
                self.recent.ended(event, kept.vector, name, frame.ts)
        if self.scene is not None:
            frame.objects += self.scene.pose_events(detections, frame.t_capture, frame.seq)
        if self.verdicts is not None:
            self.verdicts.judge(frame, vectors, chosen)
        return frame

    def chosen(self, detections: list[Detection]) -> set[int]:
        """The indices of the detections to run the second model on this frame."""
        params = self.params
        wanted = [i for i, d in enumerate(detections)
                  if (params.labels is None or d.label in params.labels)
                  and min(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= params.min_size
                  and (self.scene is None or d.track_id is not None or self._taught(d))
                  and COASTED not in d.attributes and self._due(d)]
        wanted.sort(key=lambda i: -_area(detections[i].box))
        return set(wanted[:params.max_per_frame])

    def _taught(self, detection: Detection) -> bool:
        """Whether a detection not tracked (yet) is run all the same: something was taught on its label, so the
        teach step judges it from its first frame (a flickering false positive is never confirmed)."""
        return self.verdicts is not None and detection.label in self.verdicts.matcher.labels

    def _due(self, detection: Detection) -> bool:
        """Whether a detection needs the second model: untracked, a new track, or a track whose box moved."""
        kept = self._kept.get(detection.track_id) if detection.track_id is not None else None
        if kept is None:
            return True
        overlap = iou_matrix(np.array([kept.box]), np.array([detection.box]))[0, 0]
        return bool(overlap < self.params.changed_iou)

    def run_on(self, frame: Frame, box: Box) -> tuple[dict[str, Any], np.ndarray | None]:
        """The second model on the crop of `box`: the attributes its kind gives ({} when it gives none) and, an
        embedder's, the crop's vector. When the Edge TPU fails, the CPU model takes over (as the first model's runner
        does) and runs it again."""
        assert self.runner is not None
        x0, y0, x1, y1 = crop_region(box, self.params.margin, frame.size)
        crop = Frame(frame.image[y0:y1, x0:x1], frame.seq, frame.source, frame.order, frame.t_capture, ts=frame.ts)
        self._fit.process(crop)
        assert crop.geometry is not None
        crop.geometry = shifted(crop.geometry, x0, y0, frame.size)
        try:
            self.runner.model.invoke()
        except ModelError as failure:
            if not self.runner.fall_back(failure):
                raise
            self.start(self._ctx)
            return self.run_on(frame, box)
        self._decode(crop)
        embedding = crop.kind_results.get(EMBEDDING)
        return self._result(crop), embedding.vector if isinstance(embedding, Embedding) else None

    def reconfigure(self, params: CropParams, ctx: StageContext) -> None:
        """A reload: a new model (or its accelerator, threads or kind) is loaded and the kept results forgotten;
        other parameters apply from the next frame, keeping the tracks' results and the person_down episodes. The
        gallery is read again; the teach step's tracks keep their votes."""
        model_changed = any(getattr(params, key) != getattr(self.params, key)
                            for key in ("model", "kind", "accelerator", "threads", "preprocess", "margin"))
        self.params = params
        if model_changed and self._settings is not None:
            self.runner = ModelRunner.load(second_model_settings(self._settings, params))
            self._kept.clear()
        self.start(ctx)


def _area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])
