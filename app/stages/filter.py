"""Filter: keep only the detections that matter to this pipeline (labels, a stricter score, a minimum size)."""

from __future__ import annotations

from app.frame import Frame
from app.stages.base import Stage


class Filter(Stage):
    name = "filter"

    def process(self, frame: Frame) -> Frame:
        labels = set(self.params.labels) if self.params.labels else None
        min_score = self.params.min_score or 0.0
        min_area = self.params.min_area * frame.size[0] * frame.size[1]
        frame.detections = [
            d for d in frame.detections
            if (labels is None or d.label in labels) and d.score >= min_score
            and (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) >= min_area
        ]
        return frame
