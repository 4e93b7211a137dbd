"""Making taught examples from files: the pipeline's detector finds the object, the embedder embeds its crop.

Each file (a photo, or a clip read through the video source: its first MAX_CLIP_FRAMES frames) gives one example:
the highest-scoring detection labelled LABEL among its frames, its crop embedded exactly as the run's crop stage
embeds it (the same stage, so the same margin, fit and model); with a pipeline whose model finds no boxes, the
whole image. The embedder is the crop stage's when the pipeline's crop stage embeds, else the manifest's MobileNet
v2 cut at its pooled features (MANIFEST_EMBEDDER). A file that is not there, that no source reads, or in which
the detector finds no LABEL is one ConfigError line naming it. `python -m app search` embeds its photo the same way
(`embedded`; without a label, the whole image).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from app.config import Settings
from app.config.pipeline import CropParams
from app.errors import ConfigError, SmartcamError
from app.frame import Detection, Frame
from app.model.kinds.base import DETECTIONS
from app.model.kinds.choose import choose_kind
from app.model.kinds.embedding import EMBEDDING
from app.model.runner import ModelRunner
from app.sources import build_source
from app.sources.base import EndOfStream
from app.stages import STAGES
from app.stages.base import Stage, StageContext
from app.stages.crop import Crop
from app.teach.gallery import Embedder, Example

#: the stages of a pipeline that find the objects (track and crop are not needed for a photo)
DETECTOR_STAGES = ("preprocess", "inference", "postprocess", "filter")
#: the embedder when the pipeline's crop stage is not one
MANIFEST_EMBEDDER = "mobilenet_v2_1.0_224_quant_embedding"
#: frames of a clip looked through for its best detection
MAX_CLIP_FRAMES = 300

Box = tuple[float, float, float, float]


def pipeline_embedder(settings: Settings) -> Crop | None:
    """The pipeline's crop stage, its model loaded, when it embeds; else None."""
    pipeline_crop = next((params for _, params in settings.pipeline.stages if isinstance(params, CropParams)), None)
    if pipeline_crop is None:
        return None
    crop = Crop(pipeline_crop)
    crop.load(settings, None)
    assert crop.runner is not None
    return crop if choose_kind(pipeline_crop.kind, crop.runner.model, crop.runner.labels).name == EMBEDDING else None


def _embedder(settings: Settings) -> Crop:
    """The crop stage that embeds for the run (the pipeline's, when it embeds), its model loaded."""
    crop = pipeline_embedder(settings)
    if crop is None:
        crop = Crop(CropParams(model=MANIFEST_EMBEDDER, kind=EMBEDDING))
        crop.load(settings, None)
    return crop


class Teaching:
    """A pipeline's detector and embedder, loaded: `embedder` names the model for the gallery; `example` makes
    one example from a file."""

    def __init__(self, settings: Settings) -> None:
        runner = ModelRunner.load(settings)
        self._camera = settings.device.camera
        self._context = StageContext(runner.model, runner.labels, self._camera)
        self._detector: list[Stage] = [STAGES[name](params) for name, params in settings.pipeline.stages
                                       if name in DETECTOR_STAGES]
        for stage in self._detector:
            stage.start(self._context)
        self._crop = _embedder(settings)
        assert self._crop.runner is not None
        self.embedder = Embedder.of(self._crop.runner.model.path)

    def start_embedder(self) -> None:
        """Start the embedder (after the gallery was read: starting it reads the gallery for a run's names)."""
        self._crop.start(self._context)

    def example(self, path: Path, label: str, name: str, positive: bool) -> Example:
        return Example(name, label, self.embedded(path, label), positive, str(path))

    def embedded(self, path: Path, label: str | None) -> np.ndarray:
        """The unit vector of the best detection labelled `label` in `path` (None: of its whole first frame)."""
        frame, box = self._best(path, label)
        _, vector = self._crop.run_on(frame, box)
        assert vector is not None, "an embedder gives a vector"
        return vector

    def _best(self, path: Path, label: str | None) -> tuple[Frame, Box]:
        """The frame of `path` with the best detection labelled `label`, and its box (the whole frame without a
        detector, or without a label)."""
        best: tuple[float, Frame, Box] | None = None
        seen: set[str] = set()
        for frame in self._frames(path):
            if frame.decoded != DETECTIONS or label is None:
                return frame, (0.0, 0.0, float(frame.size[0]), float(frame.size[1]))
            seen.update(d.label for d in frame.detections)
            wanted: list[Detection] = [d for d in frame.detections if d.label == label]
            top = max(wanted, key=lambda d: d.score, default=None)
            if top is not None and (best is None or top.score > best[0]):
                best = (top.score, frame, top.box)
        if best is None:
            raise ConfigError(f"{path}: the detector finds no {label} in it (it finds: "
                              f"{', '.join(sorted(seen)) or 'nothing'})")
        return best[1], best[2]

    def _frames(self, path: Path) -> Iterator[Frame]:
        """Each frame of `path` (up to MAX_CLIP_FRAMES) through the detector, one at a time."""
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
        source = build_source(self._camera.model_copy(update={"source": str(path), "loop": False, "realtime": False}))
        try:
            source.open()
            for seq in range(MAX_CLIP_FRAMES):
                captured = source.read()
                yield self._detect(Frame(np.ascontiguousarray(captured.image), seq, "teach", captured.order))
        except EndOfStream:
            return
        except SmartcamError as exc:
            raise ConfigError(f"{path}: cannot be read as a photo or a clip ({exc})") from None
        finally:
            source.close()

    def _detect(self, frame: Frame) -> Frame:
        for stage in self._detector:
            stage.prepare(frame)
            processed = stage.process(frame)
            if processed is None:  # the filter stage kept nothing
                return frame
            frame = processed
        return frame
