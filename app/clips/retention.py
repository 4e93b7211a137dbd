"""One camera's folder of clips: what it holds (the index), and keeping it within `keep_days` and `max_bytes`.

Owns the folder's state on disk, which is the only index there is, so it survives any restart: a clip is its
sidecar (NAME.json) and the files beside it (NAME.mp4, NAME.jpg), listed by a scan of the sidecars. At start
(`clean`), what a crash left is removed: temporary files (`.NAME.mp4.tmp`: never complete, never renamed) and a
video or thumbnail without its sidecar (the sidecar is written last, so the clip was never listed). `prune`
deletes clips older than `keep_days`, then the oldest while the folder holds more than `max_bytes`, each clip's
sidecar first (a listed clip never lacks its video); the newest clip always stays. Oldest is by name, which
begins with the clip's start in UTC. Only files named as clips are ever touched: the folder may hold others.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from app.clips.writer import SIDECAR, THUMBNAIL, VIDEO

#: what app/outputs/clips.py names a clip: YYYYmmdd-HHMMSS-mmmZ[-N]_<camera>
CLIP_NAME = re.compile(r"\d{8}-\d{6}-\d{3}Z(-\d+)?_[A-Za-z0-9_-]+")
DAY_S = 86400.0


@dataclass(frozen=True)
class StoredClip:
    """A clip in the folder: its name (without extension), its sidecar, and the bytes its files take."""

    name: str
    sidecar: dict
    bytes: int

    @property
    def end_ts(self) -> float:
        return float(self.sidecar.get("end_ts", 0.0))


class ClipFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def clean(self) -> list[str]:
        """Remove what a crash left (temporary files, a video or thumbnail without its sidecar); their names."""
        removed = []
        for entry in os.scandir(self.folder):
            name = entry.name
            stem, suffix = os.path.splitext(name)
            temporary = name.startswith(".") and suffix == ".tmp" and _is_clip_file(name[1:-4])
            orphan = suffix in (VIDEO, THUMBNAIL) and CLIP_NAME.fullmatch(stem) is not None and not (
                self.folder / f"{stem}{SIDECAR}").exists()
            if temporary or orphan:
                Path(entry.path).unlink(missing_ok=True)
                removed.append(name)
        return removed

    def index(self) -> list[StoredClip]:
        """Every clip listed by its sidecar, oldest first."""
        clips = []
        for entry in os.scandir(self.folder):
            stem, suffix = os.path.splitext(entry.name)
            if suffix != SIDECAR or not CLIP_NAME.fullmatch(stem):
                continue
            try:
                sidecar = json.loads(Path(entry.path).read_text())
            except (OSError, ValueError):
                sidecar = {"end_ts": entry.stat().st_mtime}  # unreadable: its age is the file's
            clips.append(StoredClip(stem, sidecar, sum(self._size(stem + ext) for ext in (VIDEO, THUMBNAIL, SIDECAR))))
        return sorted(clips, key=lambda clip: clip.name)

    def prune(self, keep_days: float, max_bytes: int, now: float) -> list[str]:
        """Delete the clips older than `keep_days` (by their end, wall time `now`), then the oldest while they take
        more than `max_bytes`; never the newest. The names deleted, oldest first."""
        clips = self.index()
        total = sum(clip.bytes for clip in clips)
        deleted = []
        for clip in clips[:-1]:
            if clip.end_ts >= now - keep_days * DAY_S and total <= max_bytes:
                continue
            self.delete(clip.name)
            total -= clip.bytes
            deleted.append(clip.name)
        return deleted

    def delete(self, name: str) -> None:
        """One clip's files, its sidecar first."""
        for ext in (SIDECAR, VIDEO, THUMBNAIL):
            (self.folder / f"{name}{ext}").unlink(missing_ok=True)

    def _size(self, name: str) -> int:
        try:
            return (self.folder / name).stat().st_size
        except FileNotFoundError:
            return 0


def _is_clip_file(name: str) -> bool:
    stem, suffix = os.path.splitext(name)
    return suffix in (VIDEO, THUMBNAIL, SIDECAR) and CLIP_NAME.fullmatch(stem) is not None
