"""Teach this: a track of the live page taught as NAME, or as not what the detector thinks it is, through the
HTTP output (`POST /api/teach` with `{"track_id": N, "name": "grace"}` or `{"track_id": N, "not": true}`).

The crop embedded is the track's box in the newest frame the HTTP output has (its detection there), embedded by
an embedder of the HTTP side's own: the pipeline's crop stage loaded a second time from the same model file
(MobileNet v2 cut: 2.3 MB, loaded at the first request) and run in the request's thread, under a lock. Not the
camera's: its interpreter belongs to the inference lane's thread, and queueing the request to the crop stage would
make the HTTP thread wait on a lane that may be slow or gated by motion (and need a path from the HTTP output to a
stage that the run does not have). The same model file and the same stage code (margin, fit, kind) give the vector
the camera gives for that crop. On the Edge TPU a second instance may not open the device; then the request fails
in one line. A snapshot (`{"snapshot": FILE, ...}`, a file the caller found by the `/snapshots/FILE` rule) is taught
as `teach add` teaches a file, by app/teach/from_snapshot.py, under the same lock.

The example is added to the gallery as `teach add` adds one (atomically; one of its label at least SAME_VIEW near
it is replaced, so "this is not a person" corrects a "this is grace" taught on the same view); the run's teach
step sees the file written and applies it from its next frame (app/teach/watch.py). A wrong body, a track not in
the newest frame, a pipeline without a crop stage that embeds and a gallery that cannot be used are one line each.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from app.config import Settings
from app.config.pipeline import CropParams
from app.errors import ConfigError, SmartcamError
from app.frame import Frame
from app.stages.base import StageContext
from app.stages.crop import Crop
from app.teach.commands import checked_teach_name, store
from app.teach.examples import pipeline_embedder
from app.teach.from_snapshot import SnapshotTeacher
from app.teach.gallery import Embedder, Example, not_name
from app.teach.run import gallery_path

#: the largest body /api/teach reads
MAX_BODY = 4096


#: what a body may be, for the messages
BODIES = '{"track_id": N, "name": NAME} or {"snapshot": FILE, "name": NAME}, or either with "not": true'


def _target(request: object) -> int | str | None:
    """The whole number track id or the snapshot's file name a request's JSON names, or None."""
    if not isinstance(request, dict):
        return None
    if "track_id" in request:
        track_id = request["track_id"]
        return track_id if isinstance(track_id, int) and not isinstance(track_id, bool) else None
    snapshot = request.get("snapshot")
    return snapshot if isinstance(snapshot, str) else None


def parsed(body: bytes) -> tuple[int | str, str | None]:
    """The track id or snapshot file name, and the name (None: `not`), of a request's JSON body; ValueError (one
    line) when it is not one."""
    try:
        request = json.loads(body)
    except ValueError:
        raise ValueError(f"the body is not JSON: send {BODIES}") from None
    target = _target(request)
    if target is None:
        raise ValueError(f"a whole number track_id or a snapshot file name is needed: {BODIES}")
    name, negative = request.get("name"), request.get("not", False)
    if negative is True and name is None:
        return target, None
    if negative is not False or not isinstance(name, str):
        raise ValueError('either a name ("name": "grace") or "not": true')
    try:
        checked_teach_name(name)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return target, name


class LiveTeacher:
    """The HTTP output's teacher: its own embedder (for the run's crop stage parameters), made at first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._crop: Crop | None = None
        self._params: CropParams | None = None
        self._snapshots = SnapshotTeacher()

    def _embedder(self, settings: Settings) -> Crop | None:
        params = next((p for _, p in settings.pipeline.stages if isinstance(p, CropParams)), None)
        if self._crop is None or params != self._params:
            self._crop, self._params = pipeline_embedder(settings), params
            if self._crop is not None and self._crop.runner is not None:
                runner = self._crop.runner
                self._crop.start(StageContext(runner.model, runner.labels, settings.device.camera))
        return self._crop

    def teach(self, settings: Settings, frame: Frame | None, body: bytes,
              snapshot_file: Callable[[str], Path | None]) -> tuple[dict, int]:
        """The document and HTTP status of `POST /api/teach` (see the module) against the newest `frame`, or the
        snapshot file `snapshot_file` finds for a name (None: none by that name)."""
        try:
            track_id, name = parsed(body)
        except ValueError as exc:
            return {"error": f"/api/teach: {exc}"}, 400
        if isinstance(track_id, str):
            path = snapshot_file(track_id)
            if path is None:
                return {"error": f"no snapshot {track_id!r} (see /snapshots/)"}, 404
            with self._lock:
                return self._snapshots.teach(settings, path, name)
        detection = next((d for d in frame.detections if d.track_id == track_id), None) if frame else None
        if frame is None or detection is None:
            shown = ", ".join(f"#{d.track_id} {d.label}" for d in frame.detections if d.track_id is not None) \
                if frame else ""
            return {"error": f"track {track_id} is not in the newest frame (its tracks: {shown or 'none'})"}, 404
        with self._lock:
            try:
                crop = self._embedder(settings)
                if crop is None or crop.runner is None:
                    return {"error": f"pipeline {settings.pipeline.name} has no crop stage that embeds (kind: "
                                     "embedding): nothing to teach with"}, 409
                _, vector = crop.run_on(frame, detection.box)
                assert vector is not None, "an embedder gives a vector"
                source = f"{settings.device.camera.name} track #{track_id} at {time.strftime('%Y-%m-%dT%H:%M:%S')}"
                example = Example(name or not_name(detection.label), detection.label, vector, name is not None, source)
                path = gallery_path(settings)
                store(path, Embedder.of(crop.runner.model.path), [example])
            except ConfigError as exc:
                return {"error": str(exc)}, 409
            except SmartcamError as exc:
                return {"error": f"the embedder failed: {exc}"}, 503
        what = name if name is not None else f"not a {detection.label}"
        return {"taught": what, "label": detection.label, "track_id": track_id, "gallery": str(path)}, 200
