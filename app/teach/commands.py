"""`python -m app teach add | list | remove` and `python -m app search`: what each does, as the lines it prints.

`add` teaches NAME from files (or, `--not`, that the files' LABEL is not one), `list` shows the names, `remove`
forgets one. The gallery is config.yaml's `teach.gallery` (`--gallery` sets it), else teach.json in the models
folder. A name is a name by the config's NAME_RULE (it may become a topic and an entity); `--not` examples of LABEL
are listed and removed as `not:LABEL`. A wrong file, name, label or gallery is one ConfigError line (exit 2).
`search` embeds a photo as `add` does and ranks the recent tracks kept beside the gallery (app/teach/recent.py) by
cosine; a store it cannot read is one warning line, and the others are searched.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from app.config import Settings
from app.config.base import checked_name
from app.config.settings import DeviceSettings
from app.errors import ConfigError
from app.teach.examples import Teaching
from app.teach.gallery import Embedder, Example, Gallery, GalleryError, load_gallery, not_name
from app.teach.recent import PATTERN, Recent, RecentError, nearest, read_recent
from app.teach.run import gallery_path

log = logging.getLogger(__name__)


def _loaded(path: Path, teaching: Teaching | None) -> Gallery:
    try:
        return load_gallery(path, teaching.embedder if teaching is not None else None)
    except GalleryError as exc:
        raise ConfigError(str(exc)) from None


def checked_teach_name(name: str) -> None:
    """ConfigError (one line) when `name` is not a name by NAME_RULE."""
    try:
        checked_name(name, "name to teach")
    except ValueError as exc:
        raise ConfigError(f"teach add {name!r}: {exc}") from None


def add(settings: Settings, name: str | None, files: list[str], label: str) -> list[str]:
    """Teach `name` (None: `--not label`) from `files`; the lines saying what was stored."""
    if name is not None:
        checked_teach_name(name)
    teaching = Teaching(settings)
    path = gallery_path(settings)
    _loaded(path, teaching)  # a gallery that cannot be used is refused before the files are read
    teaching.start_embedder()
    positive = name is not None
    examples = [teaching.example(Path(file), label, name if name is not None else not_name(label), positive)
                for file in files]
    store(path, teaching.embedder, examples)
    what = f"{name} ({label})" if positive else f"not a {label}"
    return [f"taught {what}: {len(examples)} example(s) from {', '.join(files)} -> {path}"]


def store(path: Path, embedder: Embedder, examples: list[Example]) -> None:
    """Add `examples` of `embedder` to the gallery at `path` as it is now, written atomically (ConfigError: one line,
    when it cannot be used)."""
    try:
        stored = load_gallery(path, embedder)
    except GalleryError as exc:
        raise ConfigError(str(exc)) from None
    stored.added(examples).save(path)


def listing(settings: DeviceSettings) -> list[str]:
    """One line per taught name: name, label, examples."""
    path = gallery_path(settings)
    stored = _loaded(path, None)
    lines = [f"{path}: embedder {stored.embedder.model} (sha256 {stored.embedder.sha256[:12]}…)"]
    lines += [f"{name}\t{label}\t{count} example(s)" for name, (label, count) in stored.names().items()]
    return lines


def remove(settings: DeviceSettings, name: str) -> list[str]:
    """Forget every example of `name`."""
    path = gallery_path(settings)
    stored = _loaded(path, None)
    if name not in stored.names():
        raise ConfigError(f"teach remove {name}: no such name in {path} (its names: "
                          f"{', '.join(stored.names()) or 'none'})")
    stored.without(name).save(path)
    return [f"removed {name} from {path}"]


def search(settings: Settings, file: str, label: str | None, top: int) -> list[str]:
    """The `top` recent tracks most like the best `label` in `file` (None: the whole image), one line each:
    cosine, camera/pipeline, label #track, when it ended, its taught name."""
    teaching = Teaching(settings)
    teaching.start_embedder()
    vector = teaching.embedded(Path(file), label)
    folder = gallery_path(settings).parent
    tracks: list[Recent] = []
    for path in sorted(folder.glob(PATTERN)):
        try:
            tracks += read_recent(path, teaching.embedder)
        except RecentError as exc:
            log.warning("search: %s; not searched", exc)
    if not tracks:
        return [f"no recent tracks in {folder} (the crop stage keeps each track's embedding when it ends)"]
    return [f"{similarity:.3f}\t{t.camera}/{t.pipeline}\t{t.label} #{t.track_id}\t"
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t.ts))}\t{t.name or '-'}"
            for similarity, t in nearest(tracks, vector, top)]
