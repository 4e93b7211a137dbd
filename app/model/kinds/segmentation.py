"""The `segmentation` kind: semantic segmentation (DeepLab v3), a class for every pixel.

The model gives a class map [1, H, W] of class ids, or logits [1, H, W, C] whose argmax is the class. Its grid
covers the model's input, which the frame's geometry maps onto the source frame (stretch, letterbox or crop), so
each source pixel takes the class of the grid cell it falls in (nearest neighbour). `segments` is each class's
share of the source frame, counted through that mapping without building the source-size mask; the mask itself
stays on the result (`Segments.mask_at_source`) and out of the JSON. Source pixels the model did not see (outside
a crop) are `UNSEEN` (255, PASCAL VOC's ignore label) and count for no class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from app.frame import Frame, InputGeometry
from app.model.kinds.base import Decoder, Kind
from app.model.runtime import LoadedModel, TensorSpec

if TYPE_CHECKING:
    from app.config import PostprocessParams
    from app.model.manifest import Labels

#: the result key (`Frame.kind_results`, `Frame.result`)
SEGMENTS = "segments"
#: a source pixel no grid cell covers; also why logits may have at most 255 classes
UNSEEN = 255


def mismatch(outputs: Sequence[TensorSpec]) -> str | None:
    """None for one output: a class map [1, H, W] of class ids (integers, not quantised), or logits [1, H, W, C]
    with 2 to 255 classes; H and W at least 2."""
    if len(outputs) == 1:
        (output,) = outputs
        shape = output.shape
        class_map = (len(shape) == 3 and np.issubdtype(output.dtype, np.integer) and not output.scale)
        logits = len(shape) == 4 and 2 <= shape[3] < UNSEEN
        if (class_map or logits) and shape[0] == 1 and min(shape[1:3]) >= 2:
            return None
    return ("a segmentation model has one output: a class map [1, H, W] of class ids, or logits [1, H, W, C] "
            "with 2 to 255 classes")


def doubt(outputs: Sequence[TensorSpec], labels: Labels) -> str | None:
    """None for a class map, or for logits whose C classes the labels name; else why [1, H, W, C] may be another
    model's (pose heatmaps, a feature map)."""
    (output,) = outputs
    if len(output.shape) == 3:
        return None
    count = output.shape[3]
    named = [i for i in labels.names if i < count]
    if len(named) == count:
        return None
    return (f"its {count} channels may be heatmaps or features: segmentation logits are named by its labels, which "
            f"name {len(named)} of them")


def source_cells(geometry: InputGeometry, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For each source column and row, the grid column and row (of a `grid` (height, width)) it falls in, or -1
    where the model's input does not cover it."""
    height, width = grid

    def cells(pixels: int, scale: float, offset: float, count: int) -> np.ndarray:
        normalised = (np.arange(pixels) + 0.5 - offset) / scale
        index = np.floor(normalised * count).astype(np.intp)
        return np.where((index >= 0) & (index < count), index, -1)

    return (cells(geometry.frame_width, geometry.scale_x, geometry.offset_x, width),
            cells(geometry.frame_height, geometry.scale_y, geometry.offset_y, height))


@lru_cache(maxsize=8)
def cell_weights(geometry: InputGeometry, grid: tuple[int, int]) -> np.ndarray:
    """How many source pixels fall in each grid cell, flattened: the same for every frame of a camera, so kept."""
    columns, rows = source_cells(geometry, grid)
    column_weight = np.bincount(columns[columns >= 0], minlength=grid[1])
    row_weight = np.bincount(rows[rows >= 0], minlength=grid[0])
    weights = np.outer(row_weight, column_weight).ravel()
    weights.flags.writeable = False
    return weights


def class_shares(class_map: np.ndarray, geometry: InputGeometry) -> dict[int, float]:
    """Each class's share of the source frame, largest first: a grid cell weighs the source pixels that fall in
    it; classes that cover no source pixel (in letterbox padding only) are left out."""
    weights = cell_weights(geometry, (class_map.shape[0], class_map.shape[1]))
    pixels = np.bincount(class_map.ravel(), weights=weights) / (geometry.frame_width * geometry.frame_height)
    present = np.flatnonzero(pixels)
    return {int(i): float(pixels[i]) for i in present[np.argsort(-pixels[present], kind="stable")]}


@dataclass(frozen=True)
class Segments:
    """A frame's segmentation: each class's share of the source frame (`shares`, largest first, in the JSON) and
    the model's class map on its own grid, kept out of the JSON, at source size on request (made once per frame:
    privacy, the overlay and the mask API share it, read-only)."""

    class_map: np.ndarray
    geometry: InputGeometry
    shares: dict[int, float]
    labels: dict[int, str]
    _mask: list[np.ndarray] = field(default_factory=list, init=False, repr=False, compare=False)

    def as_json(self) -> list[dict]:
        return [{"label": self.labels.get(i, str(i)), "class_id": i, "area": round(share, 4)}
                for i, share in self.shares.items()]

    def mask_at_source(self) -> np.ndarray:
        """The class of every source pixel, uint8 [frame height, frame width], read-only (copy it to change it);
        `UNSEEN` where the model's input does not cover the frame."""
        if not self._mask:
            mask = self._made_mask()
            mask.flags.writeable = False
            self._mask.append(mask)
        return self._mask[0]

    def _made_mask(self) -> np.ndarray:
        columns, rows = source_cells(self.geometry, self.class_map.shape)
        # bytes before the gather (a 720p mask moves 8x less than in intp), rows then columns (one fancy index of
        # both, np.ix_, ran 5-7x slower here)
        mask = self.class_map.astype(np.uint8)[np.maximum(rows, 0)][:, np.maximum(columns, 0)]
        mask[rows < 0, :] = UNSEEN
        mask[:, columns < 0] = UNSEEN
        return mask


def class_map_of(values: np.ndarray) -> np.ndarray:
    """The [H, W] class ids of one output (batch dropped): as given, or the argmax of logits (quantised logits
    keep their order, so they need no dequantising)."""
    if values.ndim == 3:
        return values.argmax(axis=2).astype(np.intp)
    return values.astype(np.intp, copy=False)  # the interpreter's output is a copy already


def build(params: PostprocessParams, model: LoadedModel, labels: Labels) -> Decoder:
    (output,) = model.outputs
    names = labels.names

    def decode(frame: Frame) -> None:
        assert frame.geometry is not None
        class_map = class_map_of(model.output(output)[0])
        frame.kind_results[SEGMENTS] = Segments(class_map, frame.geometry, class_shares(class_map, frame.geometry),
                                                names)
    return decode


KIND = Kind("segmentation", SEGMENTS, mismatch, build, doubt)
