"""The stages a pipeline file can name, by name, and building a camera's stages from its settings."""

from __future__ import annotations

from app.config import Settings
from app.stages.base import Stage
from app.stages.crop import Crop
from app.stages.filter import Filter
from app.stages.inference import Inference
from app.stages.postprocess import Postprocess
from app.stages.preprocess import Preprocess
from app.stages.track import Track

STAGES: dict[str, type[Stage]] = {cls.name: cls for cls in (Preprocess, Inference, Postprocess, Filter, Track,
                                                            Crop)}


def build_stages(settings: Settings) -> list[Stage]:
    """The stages of `settings`' pipeline, in lane order; the crop stage's second model loaded (its ConfigError when
    it is missing, as for the first model), with the track stage's scene when there is one."""
    stages = [STAGES[name](params) for name, params in settings.pipeline.stages]
    track = next((stage for stage in stages if isinstance(stage, Track)), None)
    for stage in stages:
        if isinstance(stage, Crop):
            stage.load(settings, track.scene if track is not None else None)
    return stages
