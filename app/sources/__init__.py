"""Turn `camera.source` into a Source: the one place that knows which spelling means which kind.

Owns the dispatch (`auto` is chosen at open: app/sources/auto.py), so the CLI, the pipeline and a
`devices` command agree. Builds the object only; the capture thread calls `open()`.
"""

from __future__ import annotations

from pathlib import Path

from app.config import CameraConfig
from app.errors import ConfigError
from app.sources.auto import AutoCamera
from app.sources.base import Captured, EndOfStream, Source
from app.sources.images import IMAGE_EXTENSIONS, ImageSource, is_glob
from app.sources.opencv import StreamSource, V4L2Source, VideoFileSource
from app.sources.pattern import PatternSource
from app.sources.picamera2 import Picamera2Source, picamera2_cameras

__all__ = ["Captured", "EndOfStream", "Source", "open_source", "picamera2_cameras"]

STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp", "srt"})
SOURCE_CHOICES = (
    "auto, picamera2, /dev/video0, 0, rtsp://host/path, http(s)://…, a video file, an image file, "
    "a directory or glob of images, or pattern"
)


def open_source(camera: CameraConfig, lores_size: tuple[int, int] | None = None) -> Source:
    """The Source for `camera.source`, not yet opened. `lores_size` (width, height) is used by picamera2 only.
    `camera.decode_scale` is used as given: `auto` is decided by the caller that knows the model and the outputs
    (app/sources/mjpeg.py `decode_scale`, as the pipeline does), and left `auto` means full size.

    Raises ConfigError for a spec that names nothing.
    """
    spec = camera.source.strip()
    if spec == "auto":
        return AutoCamera(camera, lores_size)
    if spec == "picamera2":
        return Picamera2Source(camera, lores_size)
    if spec == "pattern":
        return PatternSource(camera)
    if spec.isdigit():
        return V4L2Source(camera, f"/dev/video{int(spec)}")
    if spec.startswith("/dev/"):  # /dev/videoN, or a stable /dev/v4l/by-id/... link
        return V4L2Source(camera, spec)
    scheme, sep, _ = spec.partition("://")
    if sep:
        if scheme.lower() not in STREAM_SCHEMES:
            raise ConfigError(f"camera.source: {spec!r}: unknown scheme {scheme}:// (pass {SOURCE_CHOICES})")
        return StreamSource(camera, spec)
    if is_glob(spec):
        return ImageSource(camera, spec)
    path = Path(spec).expanduser()
    if spec and (path.is_dir() or path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS):
        return ImageSource(camera, spec)
    if spec and path.is_file():
        return VideoFileSource(camera, str(path))
    raise ConfigError(f"camera.source: {spec!r} is not an existing file, directory or device (pass {SOURCE_CHOICES})")
