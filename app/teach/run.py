"""A run's teach step, from its settings: the gallery config.yaml's `teach:` names, read for the crop stage's
embedder, as the Verdicts that name and drop its detections; or none, with one line saying why, when there is
nothing to match (no gallery yet, an empty one) or the gallery cannot be used (corrupt, foreign): the run goes on
without names. Also the names a run may give (`taught_names`), for the outputs that announce them at its start, and
the store of its ended tracks for look-alike search (`recent_tracks`, beside the gallery)."""

from __future__ import annotations

import logging
from pathlib import Path

from app.config import Settings
from app.config.pipeline import CropParams
from app.config.settings import DeviceSettings
from app.config.teach import DEFAULT_GALLERY
from app.teach.gallery import Embedder, GalleryError, load_gallery
from app.teach.matching import Matcher
from app.teach.recent import RecentTracks, store_path
from app.teach.verdicts import Verdicts

log = logging.getLogger(__name__)


def gallery_path(settings: DeviceSettings) -> Path:
    """`teach.gallery`, or the default file in the models folder."""
    configured = settings.device.teach.gallery
    return settings.resolve_path(configured) if configured else settings.models_dir / DEFAULT_GALLERY


def taught_verdicts(settings: Settings, embedder: Path) -> Verdicts | None:
    """The teach step for the crop stage's `embedder` model file, or None (said in one line) without examples."""
    path = gallery_path(settings)
    try:
        gallery = load_gallery(path, Embedder.of(embedder))
    except GalleryError as exc:
        log.warning("teach: %s; running without taught names", exc)
        return None
    if not gallery.examples:
        log.info("teach: %s has no taught examples yet (python -m app teach add)", path)
        return None
    params = settings.device.teach
    log.info("teach: %d examples of %s from %s", len(gallery.examples), ", ".join(gallery.names()), path)
    return Verdicts(Matcher(gallery, params.threshold, params.margin))


def taught_names(settings: Settings) -> tuple[str, ...]:
    """The names taught in the run's gallery (not its `--not` examples), when its pipeline has a crop stage; none
    without one, or without a usable gallery (the crop stage says why in its one line)."""
    if not any(isinstance(params, CropParams) for _, params in settings.pipeline.stages):
        return ()
    try:
        gallery = load_gallery(gallery_path(settings), None)
    except GalleryError:
        return ()
    return tuple(dict.fromkeys(example.name for example in gallery.examples if example.positive))


def recent_tracks(settings: Settings, embedder: Path) -> RecentTracks:
    """The store of the run's ended tracks and their `embedder` vectors, beside its gallery."""
    camera, pipeline = settings.device.camera.name, settings.pipeline.name
    return RecentTracks(store_path(gallery_path(settings).parent, camera, pipeline), embedder, camera, pipeline)
