"""Names made from other names: a label or camera safe in a topic or a file name, and a model's Edge TPU twin.

`safe_name` is the one sanitiser: MQTT topic levels, Home Assistant object ids and snapshot file names all use
it, so one label is spelled the same everywhere. `edgetpu_name` and `cpu_name` are the one naming rule for a
model compiled for the Edge TPU: `NAME_edgetpu` beside `NAME`, for manifest names and file names alike
(`x_edgetpu.tflite` beside `x.tflite`).
"""

from __future__ import annotations

import re

_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_-]+")
EDGETPU_SUFFIX = "_edgetpu"
MODEL_EXTENSION = ".tflite"


def safe_name(text: str) -> str:
    """`text` with each run of characters outside [A-Za-z0-9_-] replaced by one `_` (`a & b` → `a_b`).

    The result holds only ASCII letters, digits, `_` and `-`, is never empty (`""` → `_`), and is `text` itself
    when `text` is already safe."""
    return _UNSAFE_RUN.sub("_", text) or "_"


def edgetpu_name(name: str) -> str:
    """The Edge TPU variant's name: `x` → `x_edgetpu`, `x.tflite` → `x_edgetpu.tflite`; a variant stays itself."""
    stem, extension = _split(name)
    return name if stem.endswith(EDGETPU_SUFFIX) else f"{stem}{EDGETPU_SUFFIX}{extension}"


def cpu_name(name: str) -> str:
    """The CPU model's name: `x_edgetpu` → `x`, `x_edgetpu.tflite` → `x.tflite`; a CPU name stays itself."""
    stem, extension = _split(name)
    return f"{stem.removesuffix(EDGETPU_SUFFIX)}{extension}"


def _split(name: str) -> tuple[str, str]:
    """(stem, `.tflite` or ``): a manifest name has no extension, a file name has one."""
    if name.endswith(MODEL_EXTENSION):
        return name[:-len(MODEL_EXTENSION)], MODEL_EXTENSION
    return name, ""
