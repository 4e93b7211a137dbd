"""Inference: run the model on the input the preprocess stage wrote. The interpreter releases the GIL here."""

from __future__ import annotations

from app.frame import Frame
from app.stages.base import Stage, StageContext


class Inference(Stage):
    name = "inference"

    def start(self, ctx: StageContext) -> None:
        self.model = ctx.model

    def process(self, frame: Frame) -> Frame:
        self.model.invoke()
        return frame
