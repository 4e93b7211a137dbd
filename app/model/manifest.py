"""Models by name: the manifest, where their files live, and their labels.

Owns `models/manifest.yaml` (named models with source, checksum, labels and kind; or, for a model made here, the
named model and tensor it is cut from: an embedder from a classifier), resolving what a pipeline's
`inference.model` means (a name or a path), and reading labels — from a file with `N name`, `N: name` or plain
lines, or from what a `.tflite` packs in a zip appended to its flatbuffer: the label file of TFLite metadata, or
the class names of an Ultralytics export's metadata.
"""

from __future__ import annotations

import ast
import copy
import difflib
import json
import re
import sys
import zipfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from app.config import DEFAULT_CONFIG, PROJECT_DIR
from app.errors import ConfigError
from app.model.cut import cut_model
from app.model.digest import digests
from app.text_file import read_text

MANIFEST = PROJECT_DIR / "models" / "manifest.yaml"
#: far beyond any label file (ImageNet's 1001 names are 20 KB), so a device or a wrong file is refused, not read
MAX_LABELS_BYTES = 4 * 1024 * 1024
BYTE_ORDER_MARK = "\ufeff"
_NUMBERED_LABEL = re.compile(r"^\s*(\d+)\s*[:\s]\s*(.+?)\s*$")


@dataclass(frozen=True)
class CutFrom:
    """A named model made rather than fetched: another named model cut at one of its tensors (app/model/cut.py)."""

    model: str
    tensor: str


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
    cut_from: CutFrom | None = None

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
        cut_from = fields.pop("cut_from", None)
        entries[name] = ModelEntry(
            name=name,
            input_size=tuple(fields.pop("input_size")),
            labels=tuple(labels) if isinstance(labels, list) else labels,
            cut_from=CutFrom(**cut_from) if cut_from else None,
            **fields,
        )
    return entries


def is_path(ref: str) -> bool:
    """A model reference is a path when it names a .tflite file or a folder; otherwise it is a manifest name."""
    return ref.endswith(".tflite") or "/" in ref or Path(ref).is_file()


def pull_command(name: str, config_path: Path | None = None) -> str:
    """The command that fetches `name` where this configuration looks, as this interpreter runs it (a fresh
    Debian has no `python`; the service's models are found only with its --config)."""
    config = "" if config_path is None or config_path.resolve() == DEFAULT_CONFIG.resolve() else \
        f" --config {config_path}"
    return f"{sys.executable} -m app models pull {name}{config}"


def resolve_model(ref: str, models_dir: Path, config_path: Path | None = None) -> Path:
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
    path = made_cut(entries[ref], models_dir) or models_dir / entries[ref].file
    if not path.is_file():
        raise ConfigError(f"model {ref} is not downloaded: {pull_command(ref, config_path)}")
    return path


def made_cut(entry: ModelEntry, models_dir: Path) -> Path | None:
    """A cut entry's file in `models_dir`, made from its source model there (reused when already made from that very
    file); None for an entry that is not a cut, or whose source is not downloaded."""
    if entry.cut_from is None:
        return None
    source = models_dir / manifest()[entry.cut_from.model].file
    return cut_model(source, entry.cut_from.tensor, models_dir / entry.file) if source.is_file() else None


@dataclass(frozen=True)
class Labels:
    """A model's class names as its label source means them.

    `numbered`: the source gave every id (`N name`, `N: name`), so ids are taken as written; otherwise line `i` is
    class `i`, blank lines included (pycoral's `read_label_file` does the same), and `lines` is how many there were.
    """

    names: dict[int, str] = field(default_factory=dict)
    numbered: bool = False
    lines: int = 0
    #: where the names came from, for messages
    origin: str = "none"

    def for_classes(self, count: int) -> dict[int, str]:
        """Id -> name for a model with `count` classes. The one offset: a plain 1000-line file (ImageNet without
        its background line) given to a 1001-class model, whose class 0 is the background, starts at id 1."""
        if not self.numbered and self.lines == 1000 and count == 1001:
            return {i + 1: name for i, name in self.names.items()}
        return self.names


def read_labels(path: Path) -> Labels:
    """Labels from a file (see `parse_labels`)."""
    return parse_labels(read_text(path, "labels", MAX_LABELS_BYTES).splitlines(), str(path))


def parse_labels(lines: list[str], origin: str = "labels") -> Labels:
    """`N name` / `N: name` lines keep their numbers; plain lines are numbered by position, blank lines kept. A
    UTF-8 byte-order mark (Windows tools write one) is not part of the first name, and CRLF ends a line as LF does."""
    if lines and lines[0].startswith(BYTE_ORDER_MARK):
        lines = [lines[0][len(BYTE_ORDER_MARK):], *lines[1:]]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    filled = [line for line in lines if line.strip()]
    numbered = [_NUMBERED_LABEL.match(line) for line in filled]
    if filled and all(numbered):
        return Labels({int(m.group(1)): m.group(2) for m in numbered if m}, True, len(lines), origin)
    return Labels({i: line.strip() for i, line in enumerate(lines) if line.strip()}, False, len(lines), origin)


def labels_from_metadata(model_path: Path) -> Labels:
    """The class names packed in the model's metadata (a zip appended to the flatbuffer): Ultralytics' `names`
    when an export wrote them, else the label file of TFLite metadata; empty Labels when there is neither."""
    try:
        with zipfile.ZipFile(model_path) as packed:
            texts = {info.filename: packed.read(info).decode("utf-8", errors="replace") for info in packed.infolist()
                     if info.filename.endswith((".txt", ".json")) and info.file_size <= MAX_LABELS_BYTES}
    except (zipfile.BadZipFile, OSError):
        return Labels()
    origin = f"{model_path.name}'s metadata"
    for name, text in texts.items():
        names = ultralytics_names(text)
        if names:
            return Labels(names, True, len(names), f"{origin} ({name}: Ultralytics' names)")
    label_files = [name for name in texts if name.endswith(".txt")]
    if not label_files:
        return Labels()
    name = next((n for n in label_files if "label" in n.lower()), label_files[0])
    return parse_labels(texts[name].splitlines(), f"{origin} ({name})")


def ultralytics_names(text: str) -> dict[int, str]:
    """Id -> name from Ultralytics' export metadata: a dict whose `names` is {id: name} (a list in older YOLOv5
    exports), written as JSON (`metadata.json`, appended as a zip by recent exports) or as a Python literal
    (`temp_meta.txt`, the file older exports packed with tflite-support); empty for any other text."""
    if not text.lstrip().startswith("{"):
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        try:
            document = ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return {}
    names = document.get("names") if isinstance(document, dict) else None
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        return {}
    try:
        return {int(i): str(name) for i, name in names.items()}
    except (TypeError, ValueError):
        return {}


def entry_of(model_ref: str, model_path: Path) -> ModelEntry | None:
    """The named model `model_ref` is: by name, or for a path, the manifest entry with the file's checksum."""
    if not is_path(model_ref):
        return manifest().get(model_ref)
    found = digests(model_path)
    for entry in manifest().values():
        if found["sha256"] == entry.sha256 or found["git_sha1"] == entry.git_sha1:
            return entry
    return None


def declared_kind(model_path: Path) -> str | None:
    """The kind the manifest declares for a model file, matched by its file name; None for a file it does not name."""
    kinds = {entry.file: entry.kind for entry in manifest().values()}
    return kinds.get(model_path.name)


def resolve_labels(labels: str | list[str] | None, model_ref: str, models_dir: Path, model_path: Path,
                   config_path: Path | None = None) -> Labels:
    """Labels for a model: the file or names given; else the named model's (a path is matched to its named model
    by checksum); else the model's metadata; else none (results carry class ids)."""
    if isinstance(labels, list):
        return Labels(dict(enumerate(labels)), True, len(labels), "the pipeline's inference.labels")
    if labels:
        return read_labels(Path(labels).expanduser())
    entry = entry_of(model_ref, model_path)
    if entry and isinstance(entry.labels, tuple):
        return Labels(dict(enumerate(entry.labels)), True, len(entry.labels), f"model {entry.name}")
    if entry and isinstance(entry.labels, str):
        for folder in (models_dir, model_path.parent):
            if (folder / entry.labels).is_file():
                return read_labels(folder / entry.labels)
        raise ConfigError(f"labels {entry.labels} of model {entry.name} are not downloaded: "
                          f"{pull_command(entry.name, config_path)}")
    return labels_from_metadata(model_path)
