"""A run's teach step, from its settings: the gallery config.yaml's `teach:` names, read for the crop stage's
embedder, as the Verdicts that name and drop its detections; or none, with one line saying why, when there is
nothing to match (no gallery yet, an empty one) or the gallery cannot be used (corrupt, foreign): the run goes on
without names."""

from __future__ import annotations

import logging
from pathlib import Path

from app.config import Settings
from app.config.settings import DeviceSettings
from app.config.teach import DEFAULT_GALLERY
from app.teach.gallery import Embedder, GalleryError, load_gallery
from app.teach.matching import Matcher
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
