"""The running gallery: its file read for the teach step, and read again when it is written while the run goes on
(`teach add` from a shell, or "teach this" on the live page), so a new example applies from the next frame without
a reload.

The file is compared by its stat signature (inode, size, modification time: a gallery is written by a rename, so
each write is a new inode), once a frame: one stat call. A gallery that cannot be used when read again (corrupt,
another embedder's) is one warning line and the run keeps the examples it had.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from app.teach.gallery import Embedder, Gallery, GalleryError, load_gallery
from app.teach.matching import Matcher

log = logging.getLogger(__name__)

Signature = tuple[int, int, int] | None


def _signature(path: Path) -> Signature:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


class GalleryWatch:
    """The gallery at `path` for the embedder `embedder`, matched with `threshold` and `margin`."""

    def __init__(self, path: Path, embedder: Embedder, threshold: float, margin: float) -> None:
        self.path, self._embedder, self._threshold, self._margin = path, embedder, threshold, margin
        self._seen: Signature = None

    def load(self) -> Gallery:
        """The gallery as it is now (GalleryError when it cannot be used)."""
        self._seen = _signature(self.path)
        return load_gallery(self.path, self._embedder)

    def matcher(self, gallery: Gallery) -> Matcher:
        return Matcher(gallery, self._threshold, self._margin)

    def changed(self) -> Matcher | None:
        """The matcher of the gallery when its file was written since last read, else None (and None, said in one
        line, when what was written cannot be used)."""
        if _signature(self.path) == self._seen:
            return None
        try:
            gallery = self.load()
        except GalleryError as exc:
            log.warning("teach: %s; going on with the examples read before", exc)
            return None
        log.info("teach: %s written: %d examples of %s", self.path, len(gallery.examples),
                 ", ".join(gallery.names()) or "nothing")
        return self.matcher(gallery)
