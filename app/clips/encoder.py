"""`RingEncoder`: the frames of a source that gives them decoded, encoded to H.264 into the camera's ring for clips.

Owns the encoded video of the sources that have none of their own (a V4L2 YUYV or MJPEG camera, the pattern,
images, an MJPEG stream): H.264 at the first frame's size (later frames of another size are scaled to it), a
keyframe every KEYFRAME_EVERY_S at camera.fps, no B-frames and no lookahead, so each frame in gives its packet out
at once; each frame's pts is its stamp (on TIME_BASE, from the first frame's), so the ring maps stamps and stream
time one to one. The encoder is the board's own (`h264_v4l2m2m`, as a Pi 4 has) when it opens, else libx264
`ultrafast` tuned for zero latency, said in one line. It is made only when clips are on, and runs in the capture
lane's thread: libx264 takes 2 to 6 ms a frame from 640x480 to 1280x720 on a desktop core (README "Clips"), a
fraction of a frame's interval, and a worker would add a queue and a copy of every frame for no gain on two cores.
A source that fills the ring itself (an H.264 stream or file) takes it over: the encoder starts again, from a
keyframe, when it finds the ring restarted by another.

`AnnexBFeed` is the way in for a camera's own encoder (picamera2's H264Encoder): its frames as it gives them (Annex B
bytes with SPS and PPS in each keyframe, timestamps in microseconds), the stream's parameters parsed from the first
keyframe by FFmpeg's H.264 demuxer.
"""

from __future__ import annotations

import io
import logging
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from app.clips.ring import PacketRing
from app.frame import BGR

if TYPE_CHECKING:
    import av.container
    import av.video

log = logging.getLogger(__name__)

#: the encoders tried, in order: the board's hardware encoder, then FFmpeg's libx264 (bundled in PyAV's wheels)
ENCODERS = ("h264_v4l2m2m", "libx264")
OPTIONS = {"h264_v4l2m2m": {}, "libx264": {"preset": "ultrafast", "tune": "zerolatency"}}
TIME_BASE = Fraction(1, 90000)
KEYFRAME_EVERY_S = 2.0
#: a hardware encoder's bit rate (libx264 keeps its constant quality): bits per pixel of each frame
HARDWARE_BITS_PER_PIXEL = 0.2


class RingEncoder:
    """Encodes each frame handed to `encode` into `ring`; `codec` is the encoder in use (None before a frame)."""

    def __init__(self, ring: PacketRing, fps: float, camera: str, encoders: tuple[str, ...] = ENCODERS) -> None:
        self.ring = ring
        self.fps = fps
        self.camera = camera
        self._encoders = encoders
        self.codec: str | None = None
        self._holder: av.container.OutputContainer | None = None  # never written: it opens the encoder
        self._stream: av.video.VideoStream | None = None
        #: the ring's template when this encoder restarted it: another means the ring holds another's video
        self._template: av.video.VideoStream | None = None
        self._first_stamp = 0.0
        self._last_pts = -1
        #: the clips' width and height: the first frame's, made even (kept when the encoder starts again)
        self._size: tuple[int, int] | None = None

    def encode(self, image: np.ndarray, order: str, stamp: float) -> None:
        """Encode `image` (channels in `order`), presented at `stamp`, into the ring."""
        import av

        if self._stream is None or self.ring.template is not self._template:  # not begun, or another took the ring
            width, height = self._size or (image.shape[1], image.shape[0])
            self._start(width, height, stamp)
        stream = self._stream
        assert stream is not None
        frame = av.VideoFrame.from_ndarray(image, format="bgr24" if order == BGR else "rgb24")  # scaled by encode
        frame.pts = self._last_pts = max(round((stamp - self._first_stamp) / TIME_BASE), self._last_pts + 1)
        for packet in stream.encode(frame):
            self.ring.add(packet)
        self.ring.presented(frame.pts, stamp)

    def _start(self, width: int, height: int, stamp: float) -> None:
        """Open the first encoder of `_encoders` that opens, at `width` x `height` made even, and restart the ring
        with its stream; an encoder that does not open is said once and not tried again."""
        import av
        import av.video

        for codec in self._encoders:
            holder = av.open(io.BytesIO(), "w", format="mp4")
            stream = holder.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1001))
            assert isinstance(stream, av.video.VideoStream), "an H.264 encoder's stream is video"
            self._size = width - width % 2, height - height % 2
            stream.width, stream.height, stream.pix_fmt = *self._size, "yuv420p"
            stream.time_base = stream.codec_context.time_base = TIME_BASE
            stream.options = {"g": str(max(1, round(KEYFRAME_EVERY_S * self.fps))), **OPTIONS[codec]}
            if codec != "libx264":
                stream.bit_rate = round(width * height * self.fps * HARDWARE_BITS_PER_PIXEL)
            try:
                holder.start_encoding()
            except av.error.FFmpegError as exc:
                log.info("%s: clips: the %s encoder does not open here (%s); trying the next", self.camera, codec,
                         exc.strerror)
                continue
            self._encoders = (codec,)
            if self.codec is None:
                log.info("%s: clips: frames encoded with %s at %dx%d", self.camera, codec, stream.width,
                         stream.height)
            self.codec, self._holder, self._stream = codec, holder, stream
            self.ring.restart(stream)
            self._template = self.ring.template
            self._first_stamp, self._last_pts = stamp, -1
            return
        raise RuntimeError(f"no H.264 encoder of {', '.join(self._encoders)} opens (is PyAV's wheel installed?)")


class AnnexBFeed:
    """An H.264 encoder's frames into `ring`, from its first keyframe on; `restart` before the encoder starts again."""

    def __init__(self, ring: PacketRing) -> None:
        self.ring = ring
        self._started = False

    def restart(self) -> None:
        self._started = False

    def frame(self, data: bytes, keyframe: bool, timestamp_us: int) -> None:
        """One encoded frame (an access unit, Annex B) presented at `timestamp_us`."""
        import av

        if not self._started:
            if not keyframe:
                return  # the ring begins at a keyframe, whose SPS gives the stream's parameters
            with av.open(io.BytesIO(data), format="h264") as probe:
                self.ring.restart(probe.streams.video[0])
            self._started = True
        packet = av.Packet(data)
        packet.pts = packet.dts = self._pts(timestamp_us)
        packet.is_keyframe = keyframe
        self.ring.add(packet)

    def presented(self, timestamp_us: int, stamp: float) -> None:
        """The frame of `timestamp_us` (the encoder's time) was delivered with `stamp`."""
        if self._started:
            self.ring.presented(self._pts(timestamp_us), stamp)

    def _pts(self, timestamp_us: int) -> int:
        return round(Fraction(timestamp_us, 1_000_000) / self.ring.time_base)
