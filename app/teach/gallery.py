"""The gallery: the taught examples in one small file, and the embedder they were made with.

A file of JSON, `{"version": 1, "embedder": {"model", "sha256"}, "entries": [...]}`; each entry is a name, the
detector's label it was taught on, whether it is a named example or a `--not` one ("this is not a bed"), the file
it came from, and its unit vector (1280 values for MobileNet v2, rounded to 6 decimals: about 12 kB an example).
A vector only compares with vectors of the same embedder, so the file names it by its model file's sha256 (and
its name, for people), and a gallery of another embedder is refused rather than matched against. It is written
atomically (a temporary file beside it, fsynced, renamed), so a crash mid-write leaves the old gallery whole.
Every way a file can be wrong is one GalleryError line naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from app.model.digest import digests
from app.outputs.snapshots import write_atomically

VERSION = 1
#: an example this near (cosine) to a new one of its label is the same view: the new one replaces it
SAME_VIEW = 0.98
#: the name a `--not` example of LABEL is listed and removed under
NOT_PREFIX = "not:"


class GalleryError(Exception):
    """A gallery that cannot be used: one line naming the file and what is wrong with it."""


@dataclass(frozen=True)
class Embedder:
    """Which model made a gallery's vectors: its file's name and sha256."""

    model: str
    sha256: str

    @classmethod
    def of(cls, path: Path) -> Embedder:
        return cls(path.name, digests(path)["sha256"])


@dataclass(frozen=True)
class Example:
    """One taught example: NAME's (or, `positive` false, "not a LABEL"'s) unit vector, from `source`."""

    name: str
    label: str
    vector: np.ndarray
    positive: bool
    source: str

    def as_json(self) -> dict:
        return {"name": self.name, "label": self.label, "positive": self.positive, "source": self.source,
                "vector": [round(float(v), 6) for v in self.vector]}


def not_name(label: str) -> str:
    """The name `--not` examples of `label` go under."""
    return f"{NOT_PREFIX}{label}"


@dataclass(frozen=True)
class Gallery:
    embedder: Embedder
    examples: tuple[Example, ...] = ()

    def names(self) -> dict[str, tuple[str, int]]:
        """Each name with its label and how many examples it has, in the order taught."""
        counts: dict[str, tuple[str, int]] = {}
        for example in self.examples:
            label, count = counts.get(example.name, (example.label, 0))
            counts[example.name] = (label, count + 1)
        return counts

    def added(self, examples: list[Example]) -> Gallery:
        """The gallery with `examples`, each replacing the examples of its label at least SAME_VIEW near it (the same
        view taught again, or corrected: "this is grace", then "this is not a person")."""
        kept = list(self.examples)
        for new in examples:
            kept = [e for e in kept if e.label != new.label or float(e.vector @ new.vector) < SAME_VIEW]
            kept.append(new)
        return replace(self, examples=tuple(kept))

    def without(self, name: str) -> Gallery:
        return replace(self, examples=tuple(e for e in self.examples if e.name != name))

    def save(self, path: Path) -> None:
        """Write the gallery to `path` atomically (its folder made when missing)."""
        document = {"version": VERSION, "embedder": {"model": self.embedder.model, "sha256": self.embedder.sha256},
                    "entries": [example.as_json() for example in self.examples]}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(document, separators=(",", ":")).encode())


def load_gallery(path: Path, embedder: Embedder | None) -> Gallery:
    """The gallery at `path`, empty when there is no file yet (then `embedder` is needed); GalleryError when it is
    not one, is of another version or was made with another embedder than `embedder` (None: any)."""
    if not path.exists():
        if embedder is None:
            raise GalleryError(f"{path}: no gallery there yet (python -m app teach add makes it)")
        return Gallery(embedder)
    try:
        document = json.loads(path.read_bytes())
        version, made_with = document["version"], Embedder(**document["embedder"])
        entries = document["entries"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GalleryError(f"{path}: not a gallery of taught examples ({exc.__class__.__name__}: {exc})") from None
    if version != VERSION:
        raise GalleryError(f"{path}: a gallery of version {version}, this smartcam reads version {VERSION}")
    if embedder is not None and made_with.sha256 != embedder.sha256:
        raise GalleryError(f"{path}: taught with the embedder {made_with.model} (sha256 {made_with.sha256[:12]}…), "
                           f"this run embeds with {embedder.model} ({embedder.sha256[:12]}…): teach it again with "
                           "this one or set teach.gallery to another file")
    try:
        examples = tuple(_example(entry) for entry in entries)
    except (ValueError, KeyError, TypeError) as exc:
        raise GalleryError(f"{path}: an entry is not a taught example ({exc.__class__.__name__}: {exc})") from None
    return Gallery(made_with, examples)


def _example(entry: dict) -> Example:
    vector = np.asarray(entry["vector"], dtype=np.float32)
    if vector.ndim != 1 or vector.size < 2:
        raise ValueError(f"{entry['name']}: its vector is not a list of numbers")
    return Example(str(entry["name"]), str(entry["label"]), vector, bool(entry["positive"]), str(entry["source"]))
