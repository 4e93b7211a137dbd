"""The one place that imports a TFLite interpreter and loads delegates.

Tries LiteRT (`ai_edge_litert`) first, then `tflite_runtime`, then `tensorflow.lite`, so the rest of the code
never knows which is installed. Turns every way a model can fail to load into one line that names the file and
the fix: a model compiled for the Edge TPU run without it, an unresolved op, a missing or corrupt file, a
delegate that does not load.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from app.errors import ConfigError, DeviceAbsent, ModelError
from app.names import cpu_name

log = logging.getLogger(__name__)

EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_OP = b"edgetpu-custom-op"
CORAL_FIX = "install the Edge TPU runtime with ./install.sh --coral"


@cache
def interpreter_api() -> SimpleNamespace:
    """The first TFLite runtime that imports: `Interpreter`, `load_delegate` and the package's name."""
    candidates = (
        ("ai_edge_litert.interpreter", "ai-edge-litert"),
        ("tflite_runtime.interpreter", "tflite-runtime"),
        ("tensorflow.lite.python.interpreter", "tensorflow"),
    )
    for module_name, package in candidates:
        try:
            module = __import__(module_name, fromlist=["Interpreter", "load_delegate"])
        except ImportError:
            continue
        return SimpleNamespace(Interpreter=module.Interpreter, load_delegate=module.load_delegate, package=package)
    raise ModelError("no TFLite runtime is installed: run ./install.sh (it installs ai-edge-litert into .venv)")


def is_edgetpu_model(path: Path) -> bool:
    """A model compiled by edgetpu_compiler carries the Edge TPU custom op's name in its flatbuffer."""
    return EDGETPU_OP in path.read_bytes()


def edgetpu_library_loads() -> bool:
    """Probe for libedgetpu without `load_delegate`, whose failure prints a traceback from `Delegate.__del__`."""
    try:
        ctypes.CDLL(EDGETPU_LIBRARY)
    except OSError:
        return False
    return True


def edgetpu_device(accelerator: str) -> str | None:
    """`edgetpu:usb:0` → `usb:0`; plain `edgetpu` → None (the first device of any kind)."""
    _, _, device = accelerator.partition(":")
    return device or None


@dataclass(frozen=True)
class TensorSpec:
    """What the decoders and preprocess need to know about one tensor."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type
    scale: float
    zero_point: int

    @classmethod
    def from_details(cls, details: dict) -> TensorSpec:
        scale, zero_point = details["quantization"]
        return cls(details["index"], details["name"], tuple(int(d) for d in details["shape"]),
                   details["dtype"], float(scale), int(zero_point))

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        if self.scale:
            return (values.astype(np.float32) - self.zero_point) * self.scale
        return values.astype(np.float32)


class LoadedModel:
    """An allocated interpreter and the facts about its tensors."""

    def __init__(self, path: Path, interpreter: Any, accelerator: str, runtime: str, threads: int) -> None:
        self.path = path
        self.threads = threads
        self.accelerator = accelerator
        self.runtime = runtime
        #: the runtime's own Interpreter, for code that drives it as the examples do (the bench's loop)
        self.interpreter = interpreter
        self.input = TensorSpec.from_details(interpreter.get_input_details()[0])
        self.outputs = [TensorSpec.from_details(d) for d in interpreter.get_output_details()]
        signatures = interpreter.get_signature_list()
        #: output tensor index by signature name (TF2 models), e.g. {"detection_boxes": 598}
        self.output_names: dict[str, int] = {}
        if len(signatures) == 1:
            runner_outputs = interpreter.get_signature_runner().get_output_details()
            self.output_names = {name: d["index"] for name, d in runner_outputs.items()}

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) the model takes."""
        return self.input.shape[2], self.input.shape[1]

    def input_buffer(self) -> np.ndarray:
        """The interpreter's own input tensor (H x W x C), to be written in place; drop it before `invoke`."""
        return self.interpreter.tensor(self.input.index)()[0]

    def invoke(self) -> None:
        """Run the model; releases the GIL, so capture and output keep running."""
        try:
            self.interpreter.invoke()
        except RuntimeError as exc:
            raise ModelError(f"{self.path}: inference failed: {_first_line(exc)}") from exc

    def output(self, spec: TensorSpec) -> np.ndarray:
        return self.interpreter.get_tensor(spec.index)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _edgetpu_delegate(accelerator: str, path: Path) -> Any:
    instead = (f"use the CPU model {cpu_name(path.name)}" if is_edgetpu_model(path) else "set accelerator: cpu")
    if not edgetpu_library_loads():
        raise ConfigError(f"accelerator {accelerator}: {EDGETPU_LIBRARY} is not installed: {CORAL_FIX}, "
                          f"or {instead}")
    device = edgetpu_device(accelerator)
    try:
        return interpreter_api().load_delegate(EDGETPU_LIBRARY, {"device": device} if device else {})
    except (OSError, ValueError) as exc:
        raise DeviceAbsent(f"accelerator {accelerator}: no Edge TPU answered ({_first_line(exc)}): check that it is "
                          f"plugged in (lsusb shows 18d1:9302 or 1a6e:089a), or {instead}") from exc


def load_model(path: Path, accelerator: str = "cpu", threads: int = 2) -> LoadedModel:
    """Load and allocate `path` on the CPU (XNNPACK, `threads`) or an Edge TPU (`edgetpu[:usb|:pci[:N]]`)."""
    if not path.is_file():
        raise ConfigError(f"{path}: model file not found")
    api = interpreter_api()
    delegates = []
    on_tpu = accelerator.startswith("edgetpu")
    if on_tpu:
        delegates.append(_edgetpu_delegate(accelerator, path))
    elif is_edgetpu_model(path):
        raise ConfigError(
            f"{path}: this model is compiled for the Edge TPU and cannot run on the CPU: use the CPU model "
            f"{cpu_name(path.name)}, or {CORAL_FIX} and set accelerator: edgetpu")
    try:
        interpreter = api.Interpreter(model_path=str(path), num_threads=threads,
                                      experimental_delegates=delegates or None)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"{path}: cannot load this model: {_first_line(exc)}") from exc
    log.info("model %s on %s (%s, %d threads)", path.name, accelerator if on_tpu else "cpu", api.package, threads)
    return LoadedModel(path, interpreter, accelerator if on_tpu else "cpu", api.package, threads)

