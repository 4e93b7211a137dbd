"""Teach this on a snapshot: a snapshot file taught as NAME, or as not what the detector thinks it is, through the
HTTP output (`POST /api/teach` with `{"snapshot": FILE, "name": "grace"}` or `{"snapshot": FILE, "not": true}`).

The HTTP output finds FILE by the rule `/snapshots/FILE` serves it by; its label is the one in its name
(`..._<camera>_<label>.jpg`, app/outputs/snapshots.py), spelled back as the detector's label whose safe spelling it
is. The example is then made as `teach add NAME FILE --label LABEL` makes it (app/teach/examples.py): the pipeline's
detector finds the best detection of that label in the image and the embedder embeds its crop. Both are the HTTP
side's own, loaded at the first snapshot taught (and again after a reload that changed the settings): a second
instance of the camera's detector, since the camera's belongs to its inference lane's thread. The caller
(app/teach/live.py) runs this in the request's thread, under the lock its own embedder uses.

Snapshots are annotated by default (`snapshots.annotated`): the boxes and labels drawn on them are in the crop that
is embedded, which moves its vector a little from the camera's; a snapshot not annotated is the cleaner example.
A snapshot not of this camera, one the detector finds no such label in, and a gallery that cannot be used are one
line each.
"""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from app.errors import ConfigError, SmartcamError
from app.model.manifest import resolve_labels, resolve_model
from app.names import safe_name
from app.outputs.snapshots import name_pattern
from app.teach.commands import store
from app.teach.examples import Teaching
from app.teach.gallery import not_name
from app.teach.run import gallery_path


def snapshot_label(file_name: str, camera: str, labels: list[str]) -> str | None:
    """The label in a snapshot's `file_name` of `camera`, as one of `labels` when one is spelled so (else as
    written); None when the name is not one of this camera's snapshots."""
    if not name_pattern(camera).fullmatch(file_name):
        return None
    written = file_name.split("_", 1)[1].removeprefix(f"{safe_name(camera)}_").rsplit(".", 1)[0]
    return next((label for label in labels if safe_name(label) == written), written)


def detector_labels(settings: Settings) -> list[str]:
    """The names of the labels of `settings`' detector."""
    params = settings.pipeline.inference
    path = resolve_model(params.model, settings.models_dir, settings.config_path)
    return list(resolve_labels(params.labels, params.model, settings.models_dir, path, settings.config_path)
                .names.values())


class SnapshotTeacher:
    """The HTTP output's detector and embedder for snapshots (`teach add`'s), made at first use. Not thread-safe:
    its caller holds a lock."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._teaching: Teaching | None = None
        self._labels: list[str] = []

    def _loaded(self, settings: Settings) -> Teaching:
        if self._teaching is None or settings != self._settings:
            self._teaching, self._settings = Teaching(settings), settings
            self._teaching.start_embedder()
            self._labels = detector_labels(settings)
        return self._teaching

    def teach(self, settings: Settings, path: Path, name: str | None) -> tuple[dict, int]:
        """The document and HTTP status of teaching the snapshot at `path` as `name` (None: not its label)."""
        camera = settings.device.camera.name
        try:
            teaching = self._loaded(settings)
        except ConfigError as exc:
            return {"error": f"the detector cannot be loaded: {exc}"}, 409
        except SmartcamError as exc:
            return {"error": f"the detector failed: {exc}"}, 503
        label = snapshot_label(path.name, camera, self._labels)
        if label is None:
            return {"error": f"{path.name} is not a snapshot of camera {camera}"}, 404
        try:
            example = teaching.example(path, label, name or not_name(label), name is not None)
        except ConfigError as exc:
            return {"error": str(exc)}, 422
        except SmartcamError as exc:
            return {"error": f"the detector or embedder failed: {exc}"}, 503
        gallery = gallery_path(settings)
        try:
            store(gallery, teaching.embedder, [example])
        except ConfigError as exc:
            return {"error": str(exc)}, 409
        what = name if name is not None else f"not a {label}"
        return {"taught": what, "label": label, "snapshot": path.name, "gallery": str(gallery)}, 200
