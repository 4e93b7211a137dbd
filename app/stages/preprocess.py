"""Preprocess: fit the frame to the model's input and write it straight into the interpreter's input tensor.

`stretch` scales the whole frame (aspect lost), `letterbox` scales it whole and pads, `crop` takes the centre at
the model's aspect. Each records an `InputGeometry` on the frame so decoders return boxes in source pixels. The
frame is resized first and only the model-size image is converted to the model's RGB (a BGR frame from OpenCV is
never converted whole). The input's dtype and quantisation decide the pixel encoding: uint8 as is (the convention
of every uint8 model: its quantisation maps raw pixels to its range), float32 scaled to `float_range`, and int8
scaled to `float_range` and then quantised with the input's own scale and zero point (one lookup table, OpenCV's
LUT), as a full-integer export (YOLOv8's, [0, 1] calibrated with its own data) expects; an int8 input without
quantisation is shifted by 128. Letterbox padding is black, except for a YOLO model (outputs the `yolo` kind
takes), whose padding is Ultralytics' grey 114, as it was trained and as Ultralytics' own predictor pads. A camera
that already delivered the whole frame at model size (`frame.lores`, picamera2's lores stream) skips the resize
when the mode is `stretch`, which is what the camera's scaler did; letterbox and crop keep their geometry. The
fitting (`scale`) is done ahead in the capture lane (`prepare`), so the inference lane only converts and writes the
model-size image; a frame that was not prepared, or was prepared for another model (the CPU fallback of an Edge
TPU), is fitted here.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.frame import BGR, RGB, Frame, InputGeometry, Scaled
from app.model.kinds import yolo
from app.model.runtime import LoadedModel
from app.stages.base import Stage, StageContext


Region = tuple[int, int, int, int]  # x, y, width, height


def fit(width: int, height: int, model_w: int, model_h: int, resize: str) -> tuple[InputGeometry, Region, Region]:
    """Where the frame goes: its geometry, the source region (x, y, w, h) and the target region in the input."""
    if resize == "letterbox":
        scale = min(model_w / width, model_h / height)
        new_w, new_h = round(width * scale), round(height * scale)
        pad_x, pad_y = (model_w - new_w) // 2, (model_h - new_h) // 2
        geometry = InputGeometry(width, height, model_w / scale, model_h / scale, -pad_x / scale, -pad_y / scale)
        return geometry, (0, 0, width, height), (pad_x, pad_y, new_w, new_h)
    if resize == "crop":
        crop_w = min(width, round(height * model_w / model_h))
        crop_h = min(height, round(crop_w * model_h / model_w))
        x0, y0 = (width - crop_w) // 2, (height - crop_h) // 2
        return InputGeometry(width, height, crop_w, crop_h, x0, y0), (x0, y0, crop_w, crop_h), (0, 0, model_w, model_h)
    return InputGeometry(width, height, width, height), (0, 0, width, height), (0, 0, model_w, model_h)


class Preprocess(Stage):
    name = "preprocess"

    def start(self, ctx: StageContext) -> None:
        self.model = ctx.model
        self.model_w, self.model_h = ctx.model.input_size
        self.dtype = np.dtype(ctx.model.input.dtype)
        low, high = self.params.float_range
        self.float_scale, self.float_offset = (high - low) / 255.0, low
        #: int8: each pixel value's encoding, from `float_range` and the input's quantisation
        self._int8 = _int8_table(self.float_scale, self.float_offset, ctx.model.input.scale,
                                 ctx.model.input.zero_point) if self.dtype == np.int8 else None
        self._padding = self._encode(padding_grey(ctx.model))

    def prepare(self, frame: Frame) -> None:
        """Fit the frame to the model in the capture lane (the resize is most of this stage's work)."""
        frame.scaled = self.scale(frame)

    def scale(self, frame: Frame) -> Scaled:
        """The frame fitted to the model's input: resized (or the camera's lores stream, when stretching)."""
        model_size = (self.model_w, self.model_h)
        lores = frame.lores
        if self.params.resize == "stretch" and lores is not None and lores.shape[:2] == (self.model_h, self.model_w):
            # the camera's ISP scaled the whole field of view for free: the stretch geometry of the main frame
            geometry, _, target = fit(*frame.size, *model_size, "stretch")
            return Scaled(lores, RGB, target, model_size, geometry)
        geometry, (sx, sy, sw, sh), target = fit(*frame.size, *model_size, self.params.resize)
        region = frame.image[sy:sy + sh, sx:sx + sw]
        pixels = cv2.resize(region, target[2:], interpolation=cv2.INTER_LINEAR)
        return Scaled(pixels, frame.order, target, model_size, geometry)

    def process(self, frame: Frame) -> Frame:
        scaled = frame.scaled
        if scaled is None or scaled.model_size != (self.model_w, self.model_h):  # not prepared, or for another model
            scaled = self.scale(frame)
        frame.geometry = scaled.geometry
        self._write(scaled.pixels, scaled.order, scaled.target)
        frame.scaled = None  # the model-size copy is not needed past here
        return frame

    def _write(self, pixels: np.ndarray, order: str, target: tuple[int, int, int, int]) -> None:
        """Encode uint8 `pixels` (channels in `order`) into the input tensor's region `target` as RGB; the rest is
        padding."""
        buffer = self.model.input_buffer()
        x, y, w, h = target
        if (w, h) != (self.model_w, self.model_h):
            buffer[...] = self._padding
        region = buffer[y:y + h, x:x + w]
        if self._int8 is not None or self.dtype == np.uint8:  # a byte per value: uint8 as is, int8 by its table
            codes = pixels if self._int8 is None else cv2.LUT(pixels, self._int8.view(np.uint8))
            into = region.view(np.uint8)
            if order == BGR:
                cv2.cvtColor(codes, cv2.COLOR_BGR2RGB, dst=into)
            else:
                into[...] = codes
            del into
        else:
            rgb = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB) if order == BGR else pixels
            np.multiply(rgb, self.float_scale, out=region, casting="unsafe")
            region += self.float_offset
        del buffer, region  # the interpreter refuses to invoke while a view of its tensor is alive

    def _encode(self, grey: int) -> float:
        """A grey pixel value in the input's encoding: as is for uint8, its code for int8, its value in the range
        for float."""
        if self.dtype == np.uint8:
            return grey
        return int(self._int8[grey]) if self._int8 is not None else grey * self.float_scale + self.float_offset


def padding_grey(model: LoadedModel) -> int:
    """The grey of a model's letterbox padding: YOLO's (Ultralytics trains and predicts with it), else black."""
    return yolo.LETTERBOX_GREY if yolo.mismatch(model.outputs) is None else 0


def _int8_table(float_scale: float, float_offset: float, scale: float, zero_point: int) -> np.ndarray:
    """The int8 code of each pixel value 0..255: its value in `float_range`, quantised by (`scale`, `zero_point`);
    without quantisation (scale 0), the pixel shifted by 128."""
    pixels = np.arange(256, dtype=np.float64)
    if not scale:
        return (pixels - 128).astype(np.int8)
    codes = np.round((pixels * float_scale + float_offset) / scale + zero_point)
    return np.clip(codes, -128, 127).astype(np.int8)
