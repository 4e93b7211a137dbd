"""Raspberry Pi CSI cameras through picamera2 (libcamera).

Owns configuring the ISP for a BGR main stream (OpenCV's order, which the JPEG encoder takes as it is) and, when the
model's input size is known, a second RGB "lores" stream the ISP scales for free, so the pipeline need not resize on
the CPU; and stamping each frame at the start of its exposure, from the metadata of the request that carried it
(app/sources/stamps.py `exposure_start`). picamera2 is imported only inside functions: it exists only on a Pi (as the
apt package python3-picamera2), and importing it starts libcamera.

With clips on, picamera2's own H264Encoder (the Pi 4's hardware encoder) encodes the main stream into the camera's
ring (`AnnexBFeed`, app/clips/encoder.py), a keyframe every KEYFRAME_EVERY_S with its SPS and PPS: the ring does what
picamera2's CircularOutput2 would, for the recorder that cuts every source's clips. An encoder that does not start
leaves the frames to the capture lane's encoder (libx264). Untested without a Pi.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import cv2
import numpy as np

from app.clips.encoder import KEYFRAME_EVERY_S, AnnexBFeed
from app.clips.ring import PacketRing
from app.config import CameraConfig
from app.errors import SourceError
from app.frame import ARRIVAL, EXPOSURE
from app.sources.base import Captured, Source
from app.sources.stamps import exposure_start

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "picamera2 is not installed: sudo apt install python3-picamera2, and make the venv with "
    "--system-site-packages (./install.sh does both on a Pi)"
)
READ_TIMEOUT_S = 5.0  # a camera that stops delivering raises OSError (the capture thread reopens it)

# picamera2 names formats the libcamera/DRM way, listing channels from the most significant byte of a
# little-endian pixel, so "RGB888" is B, G, R in memory (OpenCV's order) and "BGR888" is R, G, B (the model's).
# See "Image formats" in the Picamera2 manual.
BGR_FORMAT = "RGB888"
RGB_FORMAT = "BGR888"


def _picamera2_class() -> Any:
    try:
        from picamera2 import Picamera2
    except ImportError as e:
        raise SourceError(INSTALL_HINT) from e
    return Picamera2


def picamera2_cameras() -> list[dict]:
    """The cameras libcamera sees (dicts with Model, Id, Num, ...), or [] where picamera2 is not installed."""
    try:
        return _picamera2_class().global_camera_info()
    except SourceError:
        return []


class Picamera2Source(Source):
    """The first Pi camera: main stream at camera.width x height, plus lores at `lores_size` when given."""

    live = True

    def __init__(self, camera: CameraConfig, lores_size: tuple[int, int] | None = None) -> None:
        self.camera = camera
        self.lores_size = lores_size
        self.description = "Pi camera (picamera2)"
        self._cam: Any = None
        self._lores_yuv = False
        self._lores_width = 0  # as libcamera configured it, to crop the YUV420 row padding
        #: picamera2's H264Encoder feeding the ring, while clips are on and it runs
        self._encoder: Any = None
        self._feed: AnnexBFeed | None = None

    def open(self) -> None:
        picamera2 = _picamera2_class()
        self.close()
        # The VC4 ISP (Pi 4 and older) only makes YUV420 on the lores stream; the PiSP (Pi 5) can make RGB. Ask
        # picamera2, which checks exactly this; versions without `platform` predate the Pi 5.
        self._lores_yuv = getattr(getattr(picamera2, "platform", None), "name", "VC4") != "PISP"
        streams: dict[str, dict] = {"main": {"size": (self.camera.width, self.camera.height), "format": BGR_FORMAT}}
        if self.lores_size:
            streams["lores"] = {"size": tuple(self.lores_size), "format": "YUV420" if self._lores_yuv else RGB_FORMAT}
        cam = None
        try:
            cam = picamera2()
            cam.configure(cam.create_video_configuration(**streams, controls={"FrameRate": self.camera.fps}))
            cam.start()
        except Exception as e:  # libcamera fails with RuntimeError, IndexError (no camera), ... in its own words
            if cam is not None:
                cam.close()
            raise SourceError(
                f"cannot open the Pi camera: {e} (check the ribbon cable and `rpicam-hello --list-cameras`)"
            ) from e
        self._cam = cam
        self.fills_ring = self.ring is not None and self._start_encoder(cam, self.ring)
        if self.lores_size:
            self._lores_width = cam.stream_configuration("lores")["size"][0]
        log.info("%s: %dx%d at %g fps, lores %s", self.description, self.camera.width, self.camera.height,
                 self.camera.fps, streams.get("lores", "off"))

    def _lores_rgb(self, array: np.ndarray) -> np.ndarray:
        if not self._lores_yuv:
            return array
        # picamera2 gives YUV420 as (h * 3/2, stride): the I420 layout of an image `stride` wide, so convert it
        # whole and crop the padding.
        rgb = cv2.cvtColor(array, cv2.COLOR_YUV2RGB_I420)
        return np.ascontiguousarray(rgb[:, : self._lores_width])

    def read(self) -> Captured:
        """The next frame, its lores twin and its metadata, all from the one request, stamped at the start of its
        exposure (EXPOSURE), or at its arrival when the metadata has no usable SensorTimestamp and ExposureTime."""
        if self._cam is None:
            raise OSError(f"{self.description} is not open")
        try:
            request = self._cam.capture_request(wait=READ_TIMEOUT_S)  # TimeoutError is an OSError
        except RuntimeError as e:
            raise OSError(f"{self.description}: {e}") from e
        arrived = time.monotonic()
        try:
            image = request.make_array("main")
            lores = self._lores_rgb(request.make_array("lores")) if self.lores_size else None
            metadata = request.get_metadata()
            exposed = exposure_start(metadata, arrived)
        finally:
            request.release()
        stamp = exposed
        if self._feed is not None:  # the ring knows the stamp the frame gets
            stamp = arrived if exposed is None else exposed
            self._presented(self._feed, metadata, stamp)
        return Captured(image, lores, t_capture=stamp, stamp=ARRIVAL if exposed is None else EXPOSURE)

    def _start_encoder(self, cam: Any, ring: PacketRing) -> bool:
        """Start picamera2's H264Encoder on the main stream into `ring`; whether it runs (else said once)."""
        try:
            from picamera2.encoders import H264Encoder
            from picamera2.outputs import Output

            feed = AnnexBFeed(ring)

            class RingOutput(Output):
                def outputframe(self, frame: Any, keyframe: bool = True, timestamp: int | None = None,
                                packet: Any = None, audio: bool = False) -> None:
                    if not audio and timestamp is not None:
                        feed.frame(bytes(frame), keyframe, timestamp)

            encoder = H264Encoder(repeat=True, iperiod=max(1, round(KEYFRAME_EVERY_S * self.camera.fps)))
            cam.start_encoder(encoder, RingOutput(), name="main")
        except Exception as e:  # noqa: BLE001 - libcamera and the encoders fail in their own words
            log.warning("%s: clips: picamera2's H264Encoder does not start (%s); frames are encoded with libx264",
                        self.description, e)
            return False
        self._encoder, self._feed = encoder, feed
        return True

    def _presented(self, feed: AnnexBFeed, metadata: dict, stamp: float) -> None:
        """The frame of `metadata` was delivered at `stamp`: at the encoder's timestamp for it (microseconds of
        SensorTimestamp from the encoder's first frame)."""
        sensor, first = metadata.get("SensorTimestamp"), getattr(self._encoder, "firsttimestamp", None)
        if isinstance(sensor, int) and isinstance(first, int):
            feed.presented(sensor // 1000 - first, stamp)

    def close(self) -> None:
        if self._cam is not None:
            cam, self._cam = self._cam, None
            if self._encoder is not None:
                self._encoder = self._feed = None
                cam.stop_encoder()
            cam.close()  # also stops it
