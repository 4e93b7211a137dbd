"""Sources read through OpenCV's VideoCapture: V4L2 cameras (files and network streams are read through PyAV:
app/sources/video_file.py, app/sources/stream.py).

Owns opening each with the right backend and settings, and turning a failed read into what the capture thread
expects: OSError (it reconnects). Frames stay BGR, as OpenCV decodes them; an MJPEG camera with `camera.decode_scale`
above 1 hands over its raw JPEGs, decoded here at that scale (app/sources/mjpeg.py). Also owns what each kind's
frames are stamped with (app/sources/stamps.py has the arithmetic): a V4L2 camera's at the dequeued buffer's
timestamp (EXPOSURE).
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from app.config import CameraConfig
from app.errors import SourceError
from app.frame import ARRIVAL, EXPOSURE
from app.redact import mask_credentials
from app.sources.base import Captured, Source
from app.sources.decode_warning import DecodeWarning
from app.sources.mjpeg import decode_jpeg, decoded_side
from app.sources.stamps import device_time

log = logging.getLogger(__name__)

#: MJPEG frames in a row that may fail to decode (each skipped and counted) before the camera counts as failed
MAX_UNDECODABLE = 5


class _CaptureSource(Source):
    """One cv2.VideoCapture: subclasses choose the backend, settings, hint and what a failed read means."""

    api: int = cv2.CAP_ANY
    hint: str = ""

    def __init__(self, camera: CameraConfig, target: str) -> None:
        self.camera = camera
        self.target = target
        self.description = mask_credentials(target)  # no stream passwords in logs, stats or errors
        self._cap: cv2.VideoCapture | None = None
        self._decode_warning = DecodeWarning()

    def _configure(self, cap: cv2.VideoCapture) -> None:
        """Settings applied once the capture is open."""

    def _read_failed(self, cap: cv2.VideoCapture) -> np.ndarray:
        """Called when `cap.read()` gives no frame: return a frame or raise."""
        raise OSError(f"{self.description}: no frame (unplugged, or the stream dropped)")

    def open(self) -> None:
        self.close()
        cap = cv2.VideoCapture(self.target, self.api, [])
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.description}: {self.hint}")
        self._configure(cap)
        self._cap = cap

    def _frame(self) -> np.ndarray:
        """The next frame as `cap.read()` gives it, or what `_read_failed` makes of no frame."""
        if self._cap is None:
            raise OSError(f"{self.description} is not open")
        ok, bgr = self._cap.read()
        return bgr if ok else self._read_failed(self._cap)

    def _position_s(self) -> float:
        """CAP_PROP_POS_MSEC of the frame just read, in seconds: what OpenCV's backend knows of its time."""
        assert self._cap is not None
        return self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000

    @staticmethod
    def _captured(image: np.ndarray, t: float | None, stamp: str) -> Captured:
        """`image` stamped at `t` (`stamp` says what it is), or, with no `t`, left to be stamped at its arrival."""
        return Captured(image, t_capture=t, stamp=ARRIVAL if t is None else stamp)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _decode_error(self, message: str) -> None:
        """Count a frame that did not decode and was skipped, with a warning at most every DECODE_WARN_EVERY_S."""
        self.decode_errors += 1
        self._decode_warning.say(self.description, message, self.decode_errors)


class V4L2Source(_CaptureSource):
    """A USB (UVC) or other V4L2 camera such as /dev/video0, asked for camera.width x height at camera.fps.

    With `camera.fourcc: MJPG` and a `camera.decode_scale` above 1 (`auto` is resolved by the pipeline, which knows
    the model and the outputs; here it means 1), OpenCV's own decode is turned off and each JPEG is decoded at
    1/scale. A frame that does not decode (cut short on the USB bus) is skipped and counted in `decode_errors`;
    MAX_UNDECODABLE in a row are an OSError, so the camera is reopened.
    """

    api = cv2.CAP_V4L2
    hint = (
        "check it is listed by `v4l2-ctl --list-devices` and that the user is in group `video` "
        "(sudo usermod -aG video $USER, then log in again)"
    )

    def __init__(self, camera: CameraConfig, target: str) -> None:
        super().__init__(camera, target)
        #: the factor frames are decoded at here, chosen at open; 1: OpenCV decodes them whole
        self.scale = 1
        self._said_decoded = False

    def _configure(self, cap: cv2.VideoCapture) -> None:
        cam = self.camera
        if cam.fourcc:  # before the size: many cameras offer full resolution at full rate only as MJPG
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*cam.fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, cam.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cam.height)
        cap.set(cv2.CAP_PROP_FPS, cam.fps)
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace")
        log.info("%s: %dx%d at %g fps, %s", self.description, *size, cap.get(cv2.CAP_PROP_FPS), fourcc)
        if size != (cam.width, cam.height):
            log.warning("%s gives %dx%d, not the %dx%d asked for", self.description, *size, cam.width, cam.height)
        self.scale = self._decode_scale(fourcc, size)
        if self.scale > 1:  # read() then gives the JPEG as it came, 1 x N bytes
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)

    def _decode_scale(self, fourcc: str, size: tuple[int, int]) -> int:
        """The factor to decode at, said once per open when camera.fourcc is MJPG."""
        cam = self.camera
        if cam.fourcc.upper() != "MJPG":
            return 1
        if fourcc != "MJPG":  # its raw frames would not be JPEGs
            log.warning("%s gives %s, not MJPG: camera.decode_scale does not apply", self.description, fourcc)
            return 1
        scale = cam.decode_scale if isinstance(cam.decode_scale, int) else 1
        log.info("%s: MJPEG decoded at 1/%d: %dx%d (camera.decode_scale %s)", self.description, scale,
                 *(decoded_side(side, scale) for side in size), cam.decode_scale)
        return scale

    def read(self) -> Captured:
        """The next frame, stamped with its buffer's timestamp: OpenCV's V4L2 backend gives the dequeued buffer's
        (CAP_PROP_POS_MSEC), which uvcvideo takes on CLOCK_MONOTONIC at the start of the frame; a time that is no
        moment of the last second (another clock, or none) leaves the frame to be stamped at its arrival."""
        for _ in range(MAX_UNDECODABLE):
            image = self._frame()  # no frame at all is an OSError, as for any camera
            exposed = device_time(self._position_s(), time.monotonic())
            try:
                return self._captured(self._decoded(image), exposed, EXPOSURE)
            except OSError as exc:  # one bad frame is not a camera gone: skip it
                self._decode_error(f"{exc}; skipped")
        raise OSError(f"{self.description}: {MAX_UNDECODABLE} MJPEG frames in a row did not decode")

    def _decoded(self, image: np.ndarray) -> np.ndarray:
        """The frame `cap.read()` gave, BGR: decoded at `scale` from the raw JPEG, or as is when OpenCV decoded it."""
        if self.scale == 1:
            return image
        if image.ndim == 3:  # the driver decoded it after all
            if not self._said_decoded:
                log.info("%s: frames come decoded (CONVERT_RGB off was not honoured); used at full size",
                         self.description)
                self._said_decoded = True
            return image
        return decode_jpeg(image, self.scale)

