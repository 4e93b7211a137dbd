"""Recent tracks: the embedding of each track the crop stage saw end, kept bounded on disk, for look-alike search
(`python -m app search`).

One file per camera and pipeline beside the gallery, `recent-{camera}-{pipeline}.jsonl`: a first line naming the
embedder (`{"version": 1, "embedder": {"model", "sha256"}}`: vectors only compare with vectors of the same model),
then one line per ended track, oldest first: camera, pipeline, label, track id, wall-clock time of its end, its
taught name (or null) and its last embedding (float16 in base64: 3.5 kB a line for MobileNet v2's 1280 values).
A track's line is appended when it ends; once the file holds 2 x `RECENT_MAX` tracks it is rewritten atomically
with the newest `RECENT_MAX` (so under 3.6 MB at 500). A line a crash cut short (no newline yet) is not
read; the writer starts by rewriting the file with what it read, so it never appends after one. A file that is
not such a store (or of another embedder, or version) is one RecentError line; the run's store then starts empty.
A write that fails (a full disk) is one warning line, and the next track is tried again.
"""

from __future__ import annotations

import base64
import json
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.names import safe_name
from app.outputs.snapshots import write_atomically
from app.scene.tracker import ObjectEvent
from app.teach.gallery import Embedder

log = logging.getLogger(__name__)

VERSION = 1
#: the tracks a store keeps (the file holds up to twice as many between two rewrites)
RECENT_MAX = 500
#: the stores' file names, beside the gallery
PATTERN = "recent-*.jsonl"


class RecentError(Exception):
    """A store that cannot be read: one line naming the file and what is wrong with it."""


@dataclass(frozen=True)
class Recent:
    """One ended track: where and what it was, when it ended (wall clock), its taught name, its unit vector."""

    camera: str
    pipeline: str
    label: str
    track_id: int
    ts: float
    name: str | None
    vector: np.ndarray

    def as_json(self) -> dict:
        return {"camera": self.camera, "pipeline": self.pipeline, "label": self.label, "track_id": self.track_id,
                "ts": round(self.ts, 3), "name": self.name,
                "vector": base64.b64encode(self.vector.astype("<f2").tobytes()).decode()}

    @classmethod
    def from_json(cls, entry: dict) -> Recent:
        vector = np.frombuffer(base64.b64decode(entry["vector"], validate=True), dtype="<f2").astype(np.float32)
        if vector.size < 2:
            raise ValueError("its vector is empty")
        name = entry["name"]
        return cls(str(entry["camera"]), str(entry["pipeline"]), str(entry["label"]), int(entry["track_id"]),
                   float(entry["ts"]), None if name is None else str(name), vector / np.linalg.norm(vector))


def store_path(folder: Path, camera: str, pipeline: str) -> Path:
    return folder / f"recent-{safe_name(camera)}-{safe_name(pipeline)}.jsonl"


def _header(embedder: Embedder) -> str:
    return json.dumps({"version": VERSION, "embedder": {"model": embedder.model, "sha256": embedder.sha256}})


def read_recent(path: Path, embedder: Embedder | None) -> list[Recent]:
    """The tracks of the store at `path`, oldest first ([] when there is none); RecentError when it is not one, or
    holds another embedder's vectors (None: whichever made them, for comparing a store's tracks with each other)."""
    if not path.exists():
        return []
    try:
        lines = path.read_bytes().split(b"\n")[:-1]  # the last piece has no newline: empty, or cut short
        if not lines:
            return []
        header = json.loads(lines[0])
        version, made_with = header["version"], Embedder(**header["embedder"])
        if version != VERSION:
            raise RecentError(f"{path}: recent tracks of version {version}, this smartcam reads version {VERSION}")
        if embedder is not None and made_with.sha256 != embedder.sha256:
            raise RecentError(f"{path}: recent tracks embedded by {made_with.model}, not by {embedder.model}")
        return [Recent.from_json(json.loads(line)) for line in lines[1:]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RecentError(f"{path}: not a store of recent tracks ({exc.__class__.__name__}: {exc})") from None


def nearest(tracks: list[Recent], vector: np.ndarray, top: int) -> list[tuple[float, Recent]]:
    """The `top` tracks most similar to `vector` (a unit vector), by cosine, most similar first."""
    ranked = sorted(((float(track.vector @ vector), track) for track in tracks), key=lambda pair: -pair[0])
    return ranked[:top]


class RecentTracks:
    """The store a run's crop stage writes (see the module); opened at the first track that ends."""

    def __init__(self, path: Path, embedder_model: Path, camera: str, pipeline: str,
                 keep: int = RECENT_MAX) -> None:
        self.path, self._model, self._camera, self._pipeline = path, embedder_model, camera, pipeline
        self._keep = keep
        self._tracks: deque[Recent] | None = None
        self._lines = 0
        self._embedder: Embedder | None = None

    def ended(self, event: ObjectEvent, vector: np.ndarray, name: str | None, ts: float) -> None:
        """Keep the track of `event` (its `end`): its last `vector` and taught `name`, ended at `ts`."""
        track = Recent(self._camera, self._pipeline, event.label, event.track_id, ts, name, vector)
        try:
            if self._tracks is None:
                self._open()
            assert self._tracks is not None
            self._tracks.append(track)
            if self._lines >= 2 * self._keep:
                self._rewrite()
            else:
                with self.path.open("a") as store:
                    store.write(json.dumps(track.as_json()) + "\n")
                self._lines += 1
        except OSError as exc:
            log.warning("teach: %s: track %d not kept for search (%s)", self.path, event.track_id, exc)

    def _open(self) -> None:
        """Read what the file holds (a file that is not a store: one line, and start empty), then write it anew."""
        self._embedder = Embedder.of(self._model)
        try:
            read = read_recent(self.path, self._embedder)
        except RecentError as exc:
            log.warning("teach: %s; starting it empty", exc)
            read = []
        self._tracks = deque(read, maxlen=self._keep)
        self._rewrite()

    def _rewrite(self) -> None:
        assert self._tracks is not None and self._embedder is not None
        lines = [_header(self._embedder), *(json.dumps(track.as_json()) for track in self._tracks)]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, "".join(f"{line}\n" for line in lines).encode())
        self._lines = len(self._tracks)
