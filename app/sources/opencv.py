"""Sources read through OpenCV's VideoCapture: V4L2 cameras, network streams and video files.

Owns opening each with the right backend and settings, and turning a failed read into what the capture thread
expects: OSError for a camera or stream (it reconnects), EndOfStream at the end of a file (or a seek back to the
start when `camera.loop`). Frames stay BGR, as OpenCV decodes them; an MJPEG camera with `camera.decode_scale` above 1
hands over its raw JPEGs, decoded here at that scale (app/sources/mjpeg.py). Also owns `Pacer` (a frame rate on the
monotonic clock), which every paced source shares, and what each kind's frames are stamped with (app/sources/stamps.py
has the arithmetic): a V4L2 camera's at the dequeued buffer's timestamp (EXPOSURE), a stream's at its pts mapped onto
the monotonic clock (PRESENTATION), a paced file's at its pacer's tick (PRESENTATION), a file read as fast as the
pipeline reads at its arrival (its pts mean nothing on the monotonic clock).
"""

from __future__ import annotations

import logging
import os
import time

import cv2
import numpy as np

from app.config import CameraConfig
from app.errors import SourceError
from app.frame import ARRIVAL, EXPOSURE, PRESENTATION
from app.redact import mask_credentials
from app.sources.base import Captured, EndOfStream, Source
from app.sources.mjpeg import decode_jpeg, decoded_side
from app.sources.stamps import PresentationClock, device_time

log = logging.getLogger(__name__)

#: a stream that stops sending fails (OSError, then a reconnect) after this long instead of hanging the thread
STREAM_TIMEOUT_MS = 10_000
#: at most one warning about undecodable frames this often
DECODE_WARN_EVERY_S = 10.0
#: MJPEG frames in a row that may fail to decode (each skipped and counted) before the camera counts as failed
MAX_UNDECODABLE = 5


class Pacer:
    """Spaces calls to `wait` at least 1/fps apart; a caller that falls behind is not given a burst to catch up."""

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps
        self._due = 0.0

    def wait(self) -> float:
        """Return the monotonic time of this tick: when it was due, or now if the caller came late."""
        now = time.monotonic()
        if now < self._due:
            time.sleep(self._due - now)
            now = self._due
        self._due = now + self.interval
        return now


class _CaptureSource(Source):
    """One cv2.VideoCapture: subclasses choose the backend, settings, hint and what a failed read means."""

    api: int = cv2.CAP_ANY
    hint: str = ""

    def __init__(self, camera: CameraConfig, target: str) -> None:
        self.camera = camera
        self.target = target
        self.description = mask_credentials(target)  # no stream passwords in logs, stats or errors
        self._cap: cv2.VideoCapture | None = None
        self._warned_at: float | None = None

    def _params(self) -> list[int]:
        """Open-time VideoCapture properties, as [prop, value, ...]."""
        return []

    def _configure(self, cap: cv2.VideoCapture) -> None:
        """Settings applied once the capture is open."""

    def _read_failed(self, cap: cv2.VideoCapture) -> np.ndarray:
        """Called when `cap.read()` gives no frame: return a frame or raise."""
        raise OSError(f"{self.description}: no frame (unplugged, or the stream dropped)")

    def open(self) -> None:
        self.close()
        cap = cv2.VideoCapture(self.target, self.api, self._params())
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
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= DECODE_WARN_EVERY_S:
            log.warning("%s: %s (%d so far)", self.description, message, self.decode_errors)
            self._warned_at = now


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


class StreamSource(_CaptureSource):
    """A network stream through FFmpeg: rtsp://, http(s):// (MJPEG, HLS) and the like. Each frame is stamped at its
    presentation time (FFmpeg's pts, CAP_PROP_POS_MSEC) on the monotonic clock, once the pts is seen to keep time
    with the arrivals (`PresentationClock`); until then, and for streams whose pts FFmpeg makes up, at its arrival."""

    api = cv2.CAP_FFMPEG
    hint = "check that it plays in `ffplay URL` or VLC on this machine; for RTSP try the other camera.rtsp_transport"

    def __init__(self, camera: CameraConfig, target: str) -> None:
        super().__init__(camera, target)
        self._clock = PresentationClock()

    def _params(self) -> list[int]:
        return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]

    def open(self) -> None:
        if self.target.lower().startswith("rtsp"):  # read by OpenCV's FFmpeg backend when it opens a capture
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{self.camera.rtsp_transport}"
        super().open()
        self._clock.reset()  # a new connection is a new series of pts

    def read(self) -> Captured:
        image = self._frame()
        presented = self._clock.stamp(self._position_s(), time.monotonic())
        return self._captured(image, presented, PRESENTATION)


class VideoFileSource(_CaptureSource):
    """A video file: as fast as the pipeline reads (nothing lost), stamped at arrival, or at its own fps with
    `camera.realtime`, stamped at the pacer's tick (PRESENTATION: the moment the file, played as a camera, presents
    the frame; its decode comes after, as a camera's transfer does). Its pts are not used: the pacer, not the
    container's timing, decides when a frame is delivered.

    A frame that does not decode (a corrupt packet) is skipped by seeking to the next one, counted in
    `decode_errors`, with a warning at most every DECODE_WARN_EVERY_S; at the end, the frames of the container's
    frame count that were never delivered are counted too, and said.
    """

    hint = "check that it is a video FFmpeg can decode (`ffprobe FILE`)"
    reconnects = False

    def __init__(self, camera: CameraConfig, target: str) -> None:
        super().__init__(camera, target)
        self.live = camera.realtime
        self._pacer: Pacer | None = None
        self._delivered = 0  # in this pass over the file (with camera.loop: since the last rewind)
        self._skipped = 0

    def _configure(self, cap: cv2.VideoCapture) -> None:
        if self.camera.realtime:
            fps = cap.get(cv2.CAP_PROP_FPS)
            if not 0 < fps < 1000:  # also false for NaN
                log.warning("%s has no usable frame rate; pacing at camera.fps %g", self.description, self.camera.fps)
                fps = self.camera.fps
            self._pacer = Pacer(fps)

    def read(self) -> Captured:
        presented = None if self._pacer is None else self._pacer.wait()
        image = self._frame()
        self._delivered += 1
        return self._captured(image, presented, PRESENTATION)

    def _read_failed(self, cap: cv2.VideoCapture) -> np.ndarray:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        position = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
        while 0 <= position < total - 1:  # frame `position` does not decode: seek past it to the next that does
            self._decode_error(f"frame {position} of {total} does not decode; skipped")
            position += 1
            if cap.set(cv2.CAP_PROP_POS_FRAMES, position):
                ok, bgr = cap.read()
                if ok:
                    return bgr
        missing = total - self._delivered - self._skipped
        if missing > 0:
            self.decode_errors += missing
        if missing > 0 or self._skipped:
            log.warning("%s: ended after %d of its %d frames: %d did not decode (is the file damaged? "
                        "`ffprobe FILE`)", self.description, self._delivered, total, missing + self._skipped)
        if self.camera.loop and cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            self._delivered = self._skipped = 0
            ok, bgr = cap.read()
            if ok:
                return bgr
        raise EndOfStream(self.description)

    def _decode_error(self, message: str) -> None:
        self._skipped += 1
        super()._decode_error(message)
