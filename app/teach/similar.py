"""`/api/similar?track=ID[&top=N]` for the HTTP output: the recent tracks most like one of them.

The track is one the camera's crop stage kept when it ended (app/teach/recent.py: its store beside the gallery,
`recent-{camera}-{pipeline}.jsonl`); the newest line with that track id is it (ids start over when a run does). The
others of the same store are ranked by the cosine of their vectors with its (one store, one embedder), most similar
first, `top` of them (SIMILAR_TOP unless asked, at most SIMILAR_MAX). The answer is a JSON document and a status; a
wrong query, a track not in the store and a store that cannot be read are one line each (`error`). Only the
camera's own store is searched: `python -m app search` searches them all.
"""

from __future__ import annotations

from app.config import Settings
from app.teach.recent import Recent, RecentError, nearest, read_recent, store_path
from app.teach.run import gallery_path

#: how many tracks /api/similar answers with unless `top` says
SIMILAR_TOP = 5
SIMILAR_MAX = 100


def _summary(track: Recent) -> dict:
    return {"camera": track.camera, "pipeline": track.pipeline, "label": track.label, "track_id": track.track_id,
            "ts": round(track.ts, 3), "name": track.name}


def _query_int(query: dict[str, list[str]], key: str, default: int | None, low: int, high: int) -> int:
    """The integer `key` of the query, between `low` and `high`; ValueError (one line) otherwise."""
    raw = query.get(key, [""])[0]
    if not raw and default is not None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"{key} must be a whole number from {low} to {high}, not {raw!r}")
    return int(raw)


def similar_document(settings: Settings, query: dict[str, list[str]]) -> tuple[dict, int]:
    """The document and HTTP status of `/api/similar` for the run of `settings` (see the module)."""
    try:
        track_id = _query_int(query, "track", None, 0, 2**63 - 1)
        top = _query_int(query, "top", SIMILAR_TOP, 1, SIMILAR_MAX)
    except ValueError as exc:
        return {"error": f"/api/similar?track=ID[&top=N]: {exc}"}, 400
    camera, pipeline = settings.device.camera.name, settings.pipeline.name
    path = store_path(gallery_path(settings).parent, camera, pipeline)
    try:
        tracks = read_recent(path, None)
    except RecentError as exc:
        return {"error": str(exc)}, 500
    mine = [i for i, track in enumerate(tracks) if track.track_id == track_id]
    if not mine:
        return {"error": f"track {track_id} is not among the {len(tracks)} recent tracks of {camera}/{pipeline} "
                         "(a track is kept when it ends, by a crop stage that embeds)"}, 404
    target = tracks.pop(mine[-1])
    return {"track": _summary(target),
            "similar": [{**_summary(track), "cosine": round(similarity, 4)}
                        for similarity, track in nearest(tracks, target.vector, top)]}, 200
