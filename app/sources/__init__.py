"""Turn `camera.source` into a Source: the one place that knows which spelling means which kind.

Owns the dispatch (`auto` is chosen at open: app/sources/auto.py), so the CLI, the pipeline and a
`devices` command agree. Builds the object only; the capture thread calls `open()`. A path that is not there (yet)
is no mistake in the files: a disk may not be mounted yet, so its source is waited for as a camera is.
"""

from __future__ import annotations

from pathlib import Path

from app.config import CameraConfig
from app.errors import ConfigError
from app.redact import mask_credentials
from app.sources.auto import AutoCamera
from app.sources.base import Captured, EndOfStream, Source
from app.sources.images import IMAGE_EXTENSIONS, ImageSource, is_glob
from app.sources.opencv import V4L2Source
from app.sources.pattern import PatternSource
from app.sources.picamera2 import Picamera2Source, picamera2_cameras
from app.sources.stream import StreamSource
from app.sources.video_file import VideoFileSource

__all__ = ["Captured", "EndOfStream", "Source", "build_source", "picamera2_cameras", "source_warnings"]

STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp", "srt"})
SOURCE_CHOICES = (
    "auto, picamera2, /dev/video0, 0, rtsp://host/path, http(s)://…, a video file, an image file, "
    "a directory or glob of images, or pattern"
)


def build_source(camera: CameraConfig, lores_size: tuple[int, int] | None = None) -> Source:
    """The Source for `camera.source`, not yet opened. `lores_size` (width, height) is used by picamera2 only.
    `camera.decode_scale` is used as given: `auto` is decided by the caller that knows the model and the outputs
    (app/sources/mjpeg.py `decode_scale`, as the pipeline does), and left `auto` means full size.

    Raises ConfigError for a spec that names nothing. A path that is not there is a source that `reconnects`: its
    `open()` raises SourceError until the path appears (a still image or a directory of images when its suffix is
    an image's or it has none, else a video file).
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
            raise ConfigError(f"camera.source: {mask_credentials(spec)!r}: unknown scheme {scheme}:// (pass "
                              f"{SOURCE_CHOICES})")
        return StreamSource(camera, spec)
    if is_glob(spec):
        return ImageSource(camera, spec)
    if not spec:
        raise ConfigError(f"camera.source: {spec!r} names nothing (pass {SOURCE_CHOICES})")
    path = Path(spec).expanduser()
    source: Source
    if path.is_dir() or path.suffix.lower() in IMAGE_EXTENSIONS or not path.exists() and not path.suffix:
        source = ImageSource(camera, spec)
    else:
        source = VideoFileSource(camera, str(path))
    source.reconnects = not path.exists()  # not mounted yet? waited for, as a camera
    return source


def source_warnings(camera: CameraConfig) -> list[str]:
    """What `validate` says of `camera.source`: a ConfigError for a spec that names nothing (as a run would raise),
    and a warning for a path that is not there (a run waits for it)."""
    source = build_source(camera)  # built, not opened
    if source.reconnects and isinstance(source, (ImageSource, VideoFileSource)):
        return [f"camera.source: {camera.source.strip()} is not there: a run waits for it to appear (a disk not "
                "mounted yet? a typo?)"]
    return []
