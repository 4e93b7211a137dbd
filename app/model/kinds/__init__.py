"""The registry of model kinds: every kind smartcam decodes, one line each.

A kind is one module of this package named after it, with a `KIND` (what it produces, how it recognises its
tensors, how its decoder is built; see `base.Kind`). Adding a kind is that module and its line in `KIND_MODULES`:
the pipeline file's `postprocess.kind`, the manifest's `kind`, `auto` and the messages all read `KINDS`.
"""

from __future__ import annotations

from importlib import import_module

from app.model.kinds.base import Kind

#: `postprocess.kind` when the pipeline file declares none: the manifest's kind, else a guess from the tensors
AUTO = "auto"

#: the kinds, in the order `auto` tries them
KIND_MODULES = (
    "ssd",
    "ssd_anchors",
    "classifier",
    "segmentation",
    "yolo",
    "pose",
    "embedding",
)
KINDS: dict[str, Kind] = {kind.name: kind for kind in (import_module(f"{__name__}.{module}").KIND
                                                      for module in KIND_MODULES)}


def kind_choices() -> list[str]:
    """What `postprocess.kind` may be."""
    return [AUTO, *KINDS]
