"""Cutting a TFLite model at one of its tensors: a copy whose one output is that tensor, its weights untouched.

An embedding is what a classifier computes just before its last layer (MobileNet v2's pooled features,
`MobilenetV2/Logits/AvgPool`, 1280 values), so an embedding model is made from the classifier rather than shipped.
The copy is built with the TFLite flatbuffer schema LiteRT ships: the first subgraph's output becomes the tensor,
the operators it does not need are dropped, and so are the tensors and buffers nothing uses any more; the buffers
kept are the same bytes. The original's signatures and metadata describe its outputs (a classifier's labels), so
the copy carries neither; it carries instead what it was cut from (the source's sha256 and the tensor), so that a
copy of another file, or cut elsewhere, is made again rather than reused. The copy is written atomically.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import struct
import threading
from pathlib import Path
from typing import Any

import flatbuffers  # type: ignore[import-untyped]  # ai-edge-litert's own dependency; it ships no types
import numpy as np

from app.errors import ConfigError, ModelError
from app.model.digest import digests

#: the metadata entry of a cut model that says what it was cut from
CUT_FROM = "smartcam_cut_from"
#: metadata of the original that still holds for the copy (the runtime version its operators need)
KEPT_METADATA = {"min_runtime_version"}
#: how many tensor names a missing tensor's message suggests
NEAREST_NAMES = 3


def _schema() -> Any:
    """The flatbuffer schema's Python classes (LiteRT's wheel carries them), imported when a model is cut."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise ModelError("cutting a model needs the TFLite schema that ai-edge-litert ships: run ./install.sh (it "
                         "installs ai-edge-litert into .venv)") from None
    return schema_py_generated


def _name(entry: Any) -> str:
    """A tensor's or a metadata entry's name (bytes as the schema reads it, str once set here)."""
    return entry.name.decode() if isinstance(entry.name, bytes) else str(entry.name)


def _ints(values: Any) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def tensor_index(graph: Any, tensor: str, source_name: str) -> int:
    """The index of the tensor named `tensor`, or one line naming the names nearest it."""
    names = [_name(t) for t in graph.tensors]
    if tensor in names:
        return names.index(tensor)
    nearest = difflib.get_close_matches(tensor, names, n=NEAREST_NAMES, cutoff=0)
    raise ConfigError(f"{source_name} has no tensor {tensor} to cut at (its {len(names)} tensors; the nearest "
                      f"names: {', '.join(nearest)})")


def _needed_operators(graph: Any, output: int) -> list:
    """The operators `output` is computed from, in their order (a TFLite subgraph's operators are sorted so that
    each comes after those it reads from)."""
    needed, kept = {output}, []
    for operator in reversed(graph.operators):
        if needed.intersection(_ints(operator.outputs)):
            kept.append(operator)
            needed.update(i for i in _ints(operator.inputs) if i >= 0)
    return kept[::-1]


def _drop_unused_tensors(graph: Any, output: int) -> None:
    """Keep the tensors the kept operators, the inputs and `output` use, renumbered in their order."""
    used = set(_ints(graph.inputs)) | {output}
    for operator in graph.operators:
        used.update(i for field in (operator.inputs, operator.outputs, operator.intermediates)
                    for i in _ints(field) if i >= 0)
    order = sorted(used)
    new = {old: index for index, old in enumerate(order)}
    graph.tensors = [graph.tensors[i] for i in order]
    for operator in graph.operators:
        operator.inputs = [new[i] if i >= 0 else i for i in _ints(operator.inputs)]
        operator.outputs = [new[i] for i in _ints(operator.outputs)]
        operator.intermediates = [new[i] for i in _ints(operator.intermediates)] or None
    graph.inputs = [new[i] for i in _ints(graph.inputs)]
    graph.outputs = [new[output]]


def _keep_used_buffers(model: Any, origin: dict[str, str]) -> None:
    """Keep the buffers a tensor or a kept metadata entry uses (buffer 0, the empty one, stays first), and add the
    metadata saying what the copy was cut from."""
    schema = _schema()
    metadata = [entry for entry in model.metadata or [] if _name(entry) in KEPT_METADATA]
    used = {0} | {int(t.buffer) for graph in model.subgraphs for t in graph.tensors} | {m.buffer for m in metadata}
    order = sorted(used)
    new = {old: index for index, old in enumerate(order)}
    model.buffers = [model.buffers[i] for i in order]
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            tensor.buffer = new[int(tensor.buffer)]
    for entry in metadata:
        entry.buffer = new[entry.buffer]
    origin_buffer = schema.BufferT()
    origin_buffer.data = np.frombuffer(json.dumps(origin).encode(), np.uint8)
    model.buffers.append(origin_buffer)
    origin_entry = schema.MetadataT()
    origin_entry.name, origin_entry.buffer = CUT_FROM, len(model.buffers) - 1
    model.metadata = [*metadata, origin_entry]


def cut_bytes(data: bytes, tensor: str, source_name: str) -> bytes:
    """The model in `data` cut at `tensor` (see the module's docstring); ConfigError when it has no such tensor."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    graph = model.subgraphs[0]
    output = tensor_index(graph, tensor, source_name)
    graph.operators = _needed_operators(graph, output)
    _drop_unused_tensors(graph, output)
    model.signatureDefs = None
    _keep_used_buffers(model, {"sha256": hashlib.sha256(data).hexdigest(), "tensor": tensor})
    builder = flatbuffers.Builder(len(data))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def cut_origin(path: Path) -> dict[str, str] | None:
    """What the model at `path` was cut from ({sha256, tensor}); None when it is not a cut (or not readable)."""
    try:
        model = _schema().Model.GetRootAs(path.read_bytes(), 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() == CUT_FROM.encode():
                return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    except (OSError, ValueError, IndexError, TypeError, AttributeError, struct.error):
        return None  # absent or unreadable: made again
    return None


def _write_atomically(data: bytes, target: Path, source_name: str) -> None:
    """`data` at `target` whole or not at all: a part file of this process and thread beside it (so two cameras
    loading at once do not write into one), then renamed."""
    part = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        part.write_bytes(data)
        os.replace(part, target)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise ModelError(f"{target}: cannot write the model cut from {source_name}: {exc.strerror or exc}") from exc


def cut_model(source: Path, tensor: str, target: Path) -> Path:
    """`target`: `source` cut at `tensor`, made unless `target` already is that cut of this very file (its sha256
    matches), written atomically; ConfigError when `source` has no such tensor, ModelError when `target`'s folder
    cannot be written."""
    if cut_origin(target) == {"sha256": digests(source)["sha256"], "tensor": tensor}:
        return target
    _write_atomically(cut_bytes(source.read_bytes(), tensor, source.name), target, source.name)
    return target
