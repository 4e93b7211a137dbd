"""Postprocess: turn the model's output tensors into results on the frame, in source-frame pixels.

`kind: auto` decides the decoder from the output tensors' shapes (never their position alone); a kind the
tensors cannot be is a configuration error that names the shapes. Each kind's decoder is built once, at start,
by the function `DECODERS` names for it.
"""

from __future__ import annotations

from collections.abc import Callable

from app.config import PostprocessParams
from app.errors import ConfigError
from app.frame import Frame
from app.model.runtime import TensorSpec
from app.stages.base import Stage, StageContext
from app.stages.postprocess.anchors import decode_anchors, is_ssd_anchors, ssd_anchors
from app.stages.postprocess.classifier import classify, is_classifier
from app.stages.postprocess.ssd import SsdTensors, decode_ssd, is_ssd

Decoder = Callable[[Frame], None]
#: the kinds that give detections (boxes); the others give classes
DETECTOR_KINDS = ("ssd", "ssd_anchors")


def detect_kind(model_outputs: list[TensorSpec]) -> str | None:
    """The decoder the output tensors fit, or None."""
    shapes = [o.shape for o in model_outputs]
    if is_ssd(model_outputs):
        return "ssd"
    if is_ssd_anchors(shapes):
        return "ssd_anchors"
    if is_classifier(shapes):
        return "classifier"
    return None


def decoder_kind(params: PostprocessParams, ctx: StageContext) -> str:
    """The kind this stage decodes for this model, or ConfigError naming the model's output shapes."""
    model = ctx.model
    detected = detect_kind(model.outputs)
    if detected is not None and params.kind in ("auto", detected):
        return detected
    shapes = ", ".join(str(list(o.shape)) for o in model.outputs)
    what = f"is not {params.kind}" if params.kind != "auto" else "is not a kind smartcam decodes"
    found = f", it looks like {detected}" if detected else ""
    raise ConfigError(f"stages.postprocess.kind: {model.path.name} {what} (its outputs: {shapes}{found}; "
                      "ssd, ssd_anchors and classifier models are supported)")


def _ssd(params: PostprocessParams, ctx: StageContext) -> Decoder:
    tensors, labels = SsdTensors.of(ctx.model), ctx.labels.names

    def decode(frame: Frame) -> None:
        assert frame.geometry is not None
        frame.detections = decode_ssd(*tensors.read(ctx.model), frame.geometry, labels,
                                      params.min_score, params.max_results)
    return decode


def _ssd_anchors(params: PostprocessParams, ctx: StageContext) -> Decoder:
    a, model, labels = params.anchors, ctx.model, ctx.labels.names
    regressors, logits = sorted(model.outputs, key=lambda o: -o.shape[2])
    input_w, _ = model.input_size
    anchors = ssd_anchors(a.strides, a.anchors_per_layer, a.offset, input_w)
    if len(anchors) != regressors.shape[1]:
        raise ConfigError(f"stages.postprocess.anchors: make {len(anchors)} anchors but {model.path.name} has "
                          f"{regressors.shape[1]} (check strides and anchors_per_layer)")
    box_scale = a.box_scale or input_w

    def decode(frame: Frame) -> None:
        assert frame.geometry is not None
        frame.detections = decode_anchors(
            model.output(regressors)[0], model.output(logits)[0, :, 0], anchors, box_scale,
            frame.geometry, labels, params.min_score, params.max_results, params.nms_iou)
    return decode


def _classifier(params: PostprocessParams, ctx: StageContext) -> Decoder:
    (output,) = ctx.model.outputs
    labels = ctx.labels.for_classes(output.shape[1])

    def decode(frame: Frame) -> None:
        values = output.dequantize(ctx.model.output(output)[0])
        frame.classes = classify(values, labels, params.min_score, params.max_results)
    return decode


DECODERS: dict[str, Callable[[PostprocessParams, StageContext], Decoder]] = {
    "ssd": _ssd, "ssd_anchors": _ssd_anchors, "classifier": _classifier}


class Postprocess(Stage):
    name = "postprocess"
    params: PostprocessParams

    def start(self, ctx: StageContext) -> None:
        self.kind = decoder_kind(self.params, ctx)
        self._decode = DECODERS[self.kind](self.params, ctx)

    def process(self, frame: Frame) -> Frame:
        self._decode(frame)
        return frame
