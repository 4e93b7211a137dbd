"""Still images as a source: one file, a directory, or a glob pattern.

Owns finding the images (sorted, by extension), reading each once in order (or round again with `camera.loop`),
and skipping files that do not decode with a warning rather than stopping a batch. Not live: the pipeline reads
them as fast as it processes them, so none is dropped.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path

import cv2

from app.config import CameraConfig
from app.errors import SourceError
from app.sources.base import Captured, EndOfStream, Source

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


def is_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


class ImageSource(Source):
    """The images named by `spec`: a file, a directory (not recursive) or a glob (`**` recurses)."""

    live = False
    reconnects = False

    def __init__(self, camera: CameraConfig, spec: str) -> None:
        self.camera = camera
        self.spec = spec
        self.description = spec
        self._files: list[Path] = []
        self._next = 0

    def _find(self) -> list[Path]:
        path = Path(self.spec).expanduser()
        if is_glob(self.spec):
            candidates = [Path(p) for p in glob.glob(str(path), recursive=True)]
        elif path.is_dir():
            candidates = list(path.iterdir())
        else:
            return [path] if path.is_file() else []
        return sorted(p for p in candidates if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())

    def open(self) -> None:
        if not is_glob(self.spec) and not Path(self.spec).expanduser().exists():
            raise SourceError(f"{self.spec}: not there (a disk not mounted yet?)")
        self._files = self._find()
        self._next = 0
        if not self._files:
            kinds = " ".join(sorted(IMAGE_EXTENSIONS))
            raise SourceError(f"no images ({kinds}) at {self.spec}: check the path or pattern")
        if len(self._files) > 1:
            self.description = f"{len(self._files)} images in {self.spec}"

    def read(self) -> Captured:
        while self._files:
            if self._next == len(self._files):
                if not self.camera.loop:
                    raise EndOfStream(self.description)
                self._next = 0
            path = self._files[self._next]
            bgr = cv2.imread(str(path))
            if bgr is None:
                log.warning("skipping %s: not a readable image", path)
                del self._files[self._next]  # warn once, not on every loop
                continue
            self._next += 1
            return Captured(bgr)
        raise SourceError(f"none of the images at {self.spec} could be read")

    def close(self) -> None:
        """Nothing is held open between reads."""
