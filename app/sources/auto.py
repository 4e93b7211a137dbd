"""`camera.source: auto`: the Pi camera if picamera2 sees one, else the first V4L2 camera, chosen at every open.

Choosing at open rather than at start means a camera that is not there yet (a USB camera still enumerating at
boot, one plugged in later) is found by the reconnect loop instead of ending the run.
"""

from __future__ import annotations

from app.config import CameraConfig
from app.devices import v4l2_capture_cameras
from app.errors import SourceError
from app.sources.base import Captured, Source
from app.sources.opencv import V4L2Source
from app.sources.picamera2 import Picamera2Source, picamera2_cameras

NONE_FOUND = ("camera.source auto found no camera (no Pi camera through picamera2, no /dev/video*); waiting for "
              "one, or pass --source /dev/video0, --source rtsp://…, --source clip.mp4 or --source pattern")


def choose_camera(camera: CameraConfig, lores_size: tuple[int, int] | None) -> Source:
    """The camera `auto` means now, or SourceError when there is none."""
    # libcamera also lists USB webcams (Id containing "/usb"); those are better served by V4L2 below.
    if any("/usb" not in info.get("Id", "") for info in picamera2_cameras()):
        return Picamera2Source(camera, lores_size)
    cameras = v4l2_capture_cameras()
    if cameras:
        return V4L2Source(camera, cameras[0].path)
    raise SourceError(NONE_FOUND)


class AutoCamera(Source):
    """Delegates to the camera chosen at the last `open`."""

    def __init__(self, camera: CameraConfig, lores_size: tuple[int, int] | None) -> None:
        self.camera = camera
        self.lores_size = lores_size
        self.description = "auto (no camera chosen yet)"
        self._inner: Source | None = None

    def open(self) -> None:
        self.close()
        self._inner = choose_camera(self.camera, self.lores_size)
        self.description = self._inner.description
        self._inner.ring = self.ring
        self._inner.open()
        self.fills_ring = self._inner.fills_ring

    def read(self) -> Captured:
        if self._inner is None:
            raise OSError("no camera is open")
        return self._inner.read()

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
            self._inner = None
