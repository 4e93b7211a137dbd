"""Which clips of a camera's folder answer a query: `/api/clips` (app/outputs/http.py) over the sidecars.

Owns the query's keys and their meaning: `label` (one of the clip's labels), `since` and `until` (wall time, epoch
seconds or ISO 8601, UTC when no zone is given: the clips that end at or after `since` and begin at or before
`until`, i.e. overlap that span), `track_id` (one of its objects) and `limit` (at most that many, newest first; 50
unless given, at most MAX_LIMIT). A value that is not one of these says so in one line (`ValueError`). The index is
the folder's sidecars (app/clips/retention.py), so a listing is always what is on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from app.clips.planner import CLIPS_PATH
from app.clips.retention import ClipFolder
from app.clips.writer import THUMBNAIL, VIDEO

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


@dataclass(frozen=True)
class ClipQuery:
    label: str | None = None
    since: float | None = None
    until: float | None = None
    track_id: int | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, params: dict[str, list[str]]) -> ClipQuery:
        """From a URL's query (`parse_qs`); unknown keys (the token) are not the query's."""
        given = {key: values[-1] for key, values in params.items() if values}
        limit = _integer(given, "limit")
        limit = DEFAULT_LIMIT if limit is None else limit
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1 to {MAX_LIMIT}, not {limit}")
        return cls(given.get("label") or None, _wall_time(given, "since"), _wall_time(given, "until"),
                   _integer(given, "track_id"), limit)

    def matches(self, sidecar: dict) -> bool:
        return ((self.label is None or self.label in sidecar.get("labels", []))
                and (self.track_id is None or self.track_id in sidecar.get("track_ids", []))
                and (self.since is None or float(sidecar.get("end_ts", 0.0)) >= self.since)
                and (self.until is None or float(sidecar.get("start_ts", 0.0)) <= self.until))


def list_clips(folder: Path, query: ClipQuery) -> list[dict]:
    """The clips in `folder` that match `query`, newest first: each its sidecar, `name`, and the URLs (from the
    server's root) of its video and thumbnail."""
    if not folder.is_dir():
        return []
    found = []
    for clip in reversed(ClipFolder(folder).index()):
        if query.matches(clip.sidecar):
            found.append({**clip.sidecar, "name": clip.name, "url": f"{CLIPS_PATH}{clip.name}{VIDEO}",
                          "thumbnail_url": f"{CLIPS_PATH}{clip.name}{THUMBNAIL}"})
            if len(found) == query.limit:
                break
    return found


def _integer(given: dict[str, str], key: str) -> int | None:
    if key not in given:
        return None
    try:
        return int(given[key])
    except ValueError:
        raise ValueError(f"{key} must be a whole number, not {given[key]!r}") from None


def _wall_time(given: dict[str, str], key: str) -> float | None:
    """Epoch seconds, or an ISO 8601 time (UTC unless it names its zone)."""
    text = given.get(key)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{key} must be epoch seconds or an ISO 8601 time (2026-12-06T05:30:00Z), "
                         f"not {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
