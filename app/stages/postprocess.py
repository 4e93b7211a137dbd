"""Postprocess: turn the model's output tensors into results on the frame, in source-frame pixels.

The model's kind (`app.model.kinds`) decides how: the kind declared by the pipeline file or the model manifest,
checked against the tensors, else the one `auto` recognises. Its decoder is built once, at start.
"""

from __future__ import annotations

from app.config import PostprocessParams
from app.frame import Frame
from app.model.kinds.choose import choose_kind
from app.stages.base import Stage, StageContext


class Postprocess(Stage):
    name = "postprocess"
    params: PostprocessParams
    #: the kind's name, and what it produces (`app.model.kinds.base.DETECTIONS`, `CLASSES`, ...)
    kind: str
    produces: str

    def start(self, ctx: StageContext) -> None:
        kind = choose_kind(self.params.kind, ctx.model, ctx.labels)
        self.kind, self.produces = kind.name, kind.produces
        self._decode = kind.build(self.params, ctx.model, ctx.labels)

    def process(self, frame: Frame) -> Frame:
        self._decode(frame)
        frame.decoded = self.produces
        return frame
