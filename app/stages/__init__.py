"""The stages a pipeline file can name, by name."""

from __future__ import annotations

from app.stages.base import Stage
from app.stages.filter import Filter
from app.stages.inference import Inference
from app.stages.postprocess import Postprocess
from app.stages.preprocess import Preprocess
from app.stages.track import Track

STAGES: dict[str, type[Stage]] = {cls.name: cls for cls in (Preprocess, Inference, Postprocess, Filter, Track)}
