"""Postprocess: turn the model's output tensors into results on the frame, in source-frame pixels.

`kind: auto` decides the decoder from the output tensors' shapes (never their position alone); a kind the
tensors cannot be is a configuration error that names the shapes.
"""

from __future__ import annotations

from collections.abc import Callable

from app.errors import ConfigError
from app.frame import Frame
from app.stages.base import Stage, StageContext
from app.stages.postprocess.anchors import decode_anchors, is_ssd_anchors, ssd_anchors
from app.stages.postprocess.classifier import classify, is_classifier
from app.stages.postprocess.ssd import SsdTensors, decode_ssd, is_ssd


def detect_kind(model_outputs: list) -> str | None:
    shapes = [o.shape for o in model_outputs]
    if is_ssd(model_outputs):
        return "ssd"
    if is_ssd_anchors(shapes):
        return "ssd_anchors"
    if is_classifier(shapes):
        return "classifier"
    return None


class Postprocess(Stage):
    name = "postprocess"

    def start(self, ctx: StageContext) -> None:
        model, params = ctx.model, self.params
        detected = detect_kind(model.outputs)
        kind = detected if params.kind == "auto" else params.kind
        shapes = ", ".join(str(list(o.shape)) for o in model.outputs)
        if kind is None or (params.kind != "auto" and detected != params.kind):
            what = f"is not {params.kind}" if params.kind != "auto" else "is not a kind smartcam decodes"
            raise ConfigError(f"stages.postprocess.kind: {model.path.name} {what} (its outputs: {shapes}; "
                              "ssd, ssd_anchors and classifier models are supported)")
        self.kind = kind
        self._decode: Callable[[Frame], None] = getattr(self, f"_start_{kind}")(ctx)

    def process(self, frame: Frame) -> Frame:
        self._decode(frame)
        return frame

    def _start_ssd(self, ctx: StageContext) -> Callable[[Frame], None]:
        tensors, p = SsdTensors.of(ctx.model), self.params

        def decode(frame: Frame) -> None:
            frame.detections = decode_ssd(*tensors.read(ctx.model), frame.geometry, ctx.labels,
                                          p.min_score, p.max_results)
        return decode

    def _start_ssd_anchors(self, ctx: StageContext) -> Callable[[Frame], None]:
        p, a, model = self.params, self.params.anchors, ctx.model
        regressors, logits = sorted(model.outputs, key=lambda o: -o.shape[2])
        input_w, _ = model.input_size
        anchors = ssd_anchors(a.strides, a.anchors_per_layer, a.offset, input_w)
        if len(anchors) != regressors.shape[1]:
            raise ConfigError(f"stages.postprocess.anchors: make {len(anchors)} anchors but {model.path.name} has "
                              f"{regressors.shape[1]} (check strides and anchors_per_layer)")
        box_scale = a.box_scale or input_w

        def decode(frame: Frame) -> None:
            frame.detections = decode_anchors(
                model.output(regressors)[0], model.output(logits)[0, :, 0], anchors, box_scale,
                frame.geometry, ctx.labels, p.min_score, p.max_results, p.nms_iou)
        return decode

    def _start_classifier(self, ctx: StageContext) -> Callable[[Frame], None]:
        (output,), p = ctx.model.outputs, self.params

        def decode(frame: Frame) -> None:
            values = output.dequantize(ctx.model.output(output)[0])
            frame.classes = classify(values, ctx.labels, p.min_score, p.max_results)
        return decode
