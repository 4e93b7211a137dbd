"""A network stream as a source, through PyAV: rtsp://, http(s):// (H.264 or H.265 in MPEG-TS, MP4 or HLS; MJPEG)
and the like, demuxed once.

Owns opening a stream so that a dead one fails instead of hanging the capture thread: FFmpeg's socket `timeout` and
protocol `rw_timeout` (microseconds) and PyAV's own interrupt (for what those do not cover) give up after
OPEN_TIMEOUT_S and READ_TIMEOUT_S, and RTSP goes over `camera.rtsp_transport`. A read that fails, and a stream that
ends, is an OSError: `Reconnecting` reopens it with backoff. With clips on, an H.264 or H.265 stream's packets go
into the camera's ring as they came, the same packets decoded for inference (app/sources/av_demux.py); the ring
restarts at each open. A packet that does not decode is skipped and counted. Each frame is stamped at its pts on the
monotonic clock once the pts keeps time with the arrivals (`PresentationClock`, anchored afresh at each open), else
at its arrival. The URL's credentials are masked in every message (app/redact.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from app.config import CameraConfig
from app.errors import SourceError
from app.frame import ARRIVAL, PRESENTATION
from app.redact import mask_credentials, mask_secrets
from app.sources.av_demux import av_module, decoded, remuxed
from app.sources.base import Captured, Source
from app.sources.decode_warning import DecodeWarning
from app.sources.stamps import PresentationClock

if TYPE_CHECKING:
    import av
    import av.container
    import av.video

#: a stream that does not answer its open, or stops sending, fails after this long (then a reconnect)
OPEN_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 10.0
HINT = "check that it plays in `ffplay URL` or VLC on this machine; for RTSP try the other camera.rtsp_transport"


class StreamSource(Source):
    """A network stream's first video stream, read live: every frame as it comes (the newest wins downstream)."""

    live = True

    def __init__(self, camera: CameraConfig, target: str) -> None:
        self.camera = camera
        self.target = target
        self.description = mask_credentials(target)  # no stream passwords in logs, stats or errors
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator[av.VideoFrame] = iter(())
        self._clock = PresentationClock()
        #: the presentation time (seconds) the stream gave the frame read last (FFmpeg numbers a stream's frames
        #: itself when it carries none, as MJPEG over HTTP: 1/25 s apart)
        self.position_s = math.nan
        self._decode_warning = DecodeWarning()

    def _options(self) -> dict[str, str]:
        """FFmpeg's options for the open: timeouts in microseconds, and RTSP's transport."""
        options = {"timeout": str(round(READ_TIMEOUT_S * 1e6)), "rw_timeout": str(round(READ_TIMEOUT_S * 1e6))}
        if self.target.lower().startswith("rtsp"):
            options["rtsp_transport"] = self.camera.rtsp_transport
        return options

    def open(self) -> None:
        self.close()
        av = av_module()
        try:
            container = av.open(self.target, options=self._options(), timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S))
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"cannot open {self.description}: {self._masked(exc)}; {HINT}") from exc
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.description} has no video stream (`ffprobe URL` lists what it has)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frames and slices decoded on every core, as OpenCV's FFmpeg backend does
        self._container = container
        self.fills_ring = self.ring is not None and remuxed(stream)
        if self.filled_ring is not None:
            self.filled_ring.restart(stream)
        self._clock.reset()  # a new connection is a new series of pts
        self._frames = decoded(self._demuxed(container, stream), self._undecodable)

    def read(self) -> Captured:
        frame = next(self._frames, None)
        if frame is None:
            raise OSError(f"{self.description}: the stream ended")
        arrival = time.monotonic()
        self.position_s = math.nan if frame.time is None else frame.time
        presented = stamp = self._clock.stamp(self.position_s, arrival)
        image = frame.to_ndarray(format="bgr24")
        if self.filled_ring is not None:
            stamp = arrival if presented is None else presented  # the ring knows the stamp the frame gets
            if frame.pts is not None:
                self.filled_ring.presented(frame.pts, stamp)
        return Captured(image, t_capture=stamp, stamp=ARRIVAL if presented is None else PRESENTATION)

    def close(self) -> None:
        self._frames = iter(())
        if self._container is not None:
            container, self._container = self._container, None
            container.close()

    def _demuxed(self, container: av.container.InputContainer, stream: av.video.VideoStream) -> Iterator[av.Packet]:
        """The stream's packets as they come, each into the ring first (when this source fills it); a failed read
        (a timeout, the connection lost) is an OSError."""
        failed = av_module().error.FFmpegError  # looked up now: an except clause is evaluated at the generator's close
        try:
            for packet in container.demux(stream):
                if self.filled_ring is not None:
                    self.filled_ring.add(packet)
                yield packet
        except failed as exc:
            raise OSError(f"{self.description}: the stream failed ({self._masked(exc)})") from exc

    def _undecodable(self, packet: av.Packet, why: str) -> None:
        """Count a packet that did not decode and was skipped, with a warning at most every DECODE_WARN_EVERY_S."""
        self.decode_errors += 1
        self._decode_warning.say(self.description, f"a packet of {packet.size} bytes does not decode; skipped "
                                 f"({why})", self.decode_errors)

    def _masked(self, exc: BaseException) -> str:
        """FFmpeg's words for `exc` (which may quote the URL), the URL's credentials masked."""
        return mask_secrets(str(exc), self.target)
