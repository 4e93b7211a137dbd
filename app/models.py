"""Models by name: the manifest, where their files live, and their labels.

Owns `models/manifest.yaml` (named models with source, checksum, labels and kind), resolving what a pipeline's
`inference.model` means (a name or a path), and reading labels — from a file with `N name`, `N: name` or plain
lines, or from the label file packed inside a `.tflite` as TFLite metadata (a zip appended to the flatbuffer).
"""

from __future__ import annotations

import copy
import difflib
import re
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from app.config import PROJECT_DIR
from app.errors import ConfigError

MANIFEST = PROJECT_DIR / "models" / "manifest.yaml"
_NUMBERED_LABEL = re.compile(r"^\s*(\d+)\s*[:\s]\s*(.+?)\s*$")


@dataclass(frozen=True)
class ModelEntry:
    """One named model of the manifest."""

    name: str
    kind: str
    input_size: tuple[int, int]
    labels: str | tuple[str, ...] | None
    url: str | None = None
    pypi: str | None = None
    member: str | None = None
    git_sha1: str | None = None
    sha256: str | None = None
    edgetpu_variant: str | None = None
    edgetpu_ms: float | None = None

    @property
    def file(self) -> str:
        return f"{self.name}.tflite"


@cache
def _manifest_data() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def label_files() -> dict[str, dict]:
    """The manifest's label files: name -> {url, git_sha1, sha256}."""
    return _manifest_data()["labels"]


@cache
def manifest() -> dict[str, ModelEntry]:
    data = copy.deepcopy(_manifest_data())
    entries = {}
    for name, fields in data["models"].items():
        labels = fields.pop("labels", None)
        entries[name] = ModelEntry(
            name=name,
            input_size=tuple(fields.pop("input_size")),
            labels=tuple(labels) if isinstance(labels, list) else labels,
            **fields,
        )
    return entries


def is_path(ref: str) -> bool:
    """A model reference is a path when it names a .tflite file or a folder; otherwise it is a manifest name."""
    return ref.endswith(".tflite") or "/" in ref or Path(ref).is_file()


def resolve_model(ref: str, models_dir: Path) -> Path:
    """The file for `ref` (a path or a manifest name), or ConfigError with the command that fetches it."""
    if is_path(ref):
        path = Path(ref).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: model file not found")
        return path
    entries = manifest()
    if ref not in entries:
        close = difflib.get_close_matches(ref, entries, n=1)
        hint = f"did you mean {close[0]}?" if close else "python -m app list shows the named models"
        raise ConfigError(f"no model named {ref!r} ({hint}), and no such file")
    path = models_dir / entries[ref].file
    if not path.is_file():
        raise ConfigError(f"model {ref} is not downloaded: python -m app models pull {ref}")
    return path


def read_labels(path: Path) -> dict[int, str]:
    """Labels from a file: `N name` or `N: name` lines keep their numbers; plain lines are numbered from 0."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read labels ({exc.strerror})") from None
    return parse_labels(lines)


def parse_labels(lines: list[str]) -> dict[int, str]:
    numbered = [_NUMBERED_LABEL.match(line) for line in lines]
    if numbered and all(numbered):
        return {int(m.group(1)): m.group(2) for m in numbered}
    return {i: line.strip() for i, line in enumerate(lines)}


def labels_from_metadata(model_path: Path) -> dict[int, str]:
    """The label file packed in the model's TFLite metadata (an appended zip), or {} when there is none."""
    try:
        with zipfile.ZipFile(model_path) as packed:
            names = [n for n in packed.namelist() if n.endswith(".txt")]
            if not names:
                return {}
            name = next((n for n in names if "label" in n.lower()), names[0])
            return parse_labels(packed.read(name).decode("utf-8").splitlines())
    except (zipfile.BadZipFile, OSError):
        return {}


def resolve_labels(labels: str | None, model_ref: str, models_dir: Path, model_path: Path) -> dict[int, str]:
    """Labels for a model: the file given; else the named model's; else its metadata; else none (ids only)."""
    if labels:
        return read_labels(Path(labels).expanduser())
    entry = None if is_path(model_ref) else manifest().get(model_ref)
    if entry and isinstance(entry.labels, tuple):
        return dict(enumerate(entry.labels))
    if entry and entry.labels:
        path = models_dir / entry.labels
        if not path.is_file():
            raise ConfigError(f"labels {entry.labels} of model {model_ref} are not downloaded: "
                              f"python -m app models pull {model_ref}")
        return read_labels(path)
    return labels_from_metadata(model_path)
