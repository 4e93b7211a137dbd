"""A run's teach step, from its settings: the gallery config.yaml's `teach:` names, read for the crop stage's
embedder, as the Verdicts that name and drop its detections (with no examples yet too: the gallery is watched, and
examples written while the run goes on apply from the next frame); or none, with one line saying why, when the
gallery cannot be used (corrupt, foreign): the run goes on without names. Also the names a run may give
(`taught_names`), for the outputs that announce them at its start, and the store of its ended tracks for look-alike
search (`recent_tracks`, beside the gallery)."""

from __future__ import annotations

import logging
from pathlib import Path

from app.config import Settings
from app.config.pipeline import CropParams
from app.config.settings import DeviceSettings
from app.config.teach import DEFAULT_GALLERY
from app.teach.gallery import Embedder, GalleryError, load_gallery
from app.teach.recent import RecentTracks, store_path
from app.teach.verdicts import Verdicts
from app.teach.watch import GalleryWatch

log = logging.getLogger(__name__)


def gallery_path(settings: DeviceSettings) -> Path:
    """`teach.gallery`, or the default file in the models folder."""
    configured = settings.device.teach.gallery
    return settings.resolve_path(configured) if configured else settings.models_dir / DEFAULT_GALLERY


def taught_verdicts(settings: Settings, embedder: Path) -> Verdicts | None:
    """The teach step for the crop stage's `embedder` model file, watching its gallery (app/teach/watch.py: no
    examples yet is no answer until some are written), or None (said in one line) when the gallery is unusable."""
    path, params = gallery_path(settings), settings.device.teach
    watch = GalleryWatch(path, Embedder.of(embedder), params.threshold, params.margin)
    try:
        gallery = watch.load()
    except GalleryError as exc:
        log.warning("teach: %s; running without taught names", exc)
        return None
    if not gallery.examples:
        log.info("teach: %s has no taught examples yet (python -m app teach add, or teach this on the live page)",
                 path)
    else:
        log.info("teach: %d examples of %s from %s", len(gallery.examples), ", ".join(gallery.names()), path)
    return Verdicts(watch.matcher(gallery), watch)


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
