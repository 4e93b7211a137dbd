"""A video file as a source, through PyAV (FFmpeg's demuxer and decoders): read once, packet by packet, to its end.

Owns reading a file so that it always ends and never delivers a frame twice: a packet that does not demux or decode
is skipped and counted (`decode_errors`), never seeked back to; a frame whose pts is at or before the furthest one
delivered is not delivered; MAX_ERRORS_IN_PLACE errors in a row with no packet further into the file end it. (OpenCV's
VideoCapture could only skip a bad frame by seeking: it landed on an earlier keyframe, failed at the same frame again
and delivered frames over and over: a damaged 300-frame file gave 18,718 results in 300 s and never ended.) At the
end: EndOfStream, or with `camera.loop` a seek back to the start. Frames are BGR, as every OpenCV source gives them.

Read as fast as the pipeline reads (nothing lost), each frame is stamped at its arrival (its pts mean nothing on the
monotonic clock); with `camera.realtime`, paced at the file's frame rate and stamped at the pacer's tick
(PRESENTATION: the moment the file, played as a camera, presents the frame; its decode comes after, as a camera's
transfer does).

With clips on, the camera's `PacketRing` (`ring`) of an H.264 or H.265 file gets every packet demuxed, the very
packets decoded for inference (video is read once), and each frame's stamp as it is delivered, so a clip can be cut
by the frames' stamps (app/sources/av_demux.py; a file of another codec is encoded for clips by the capture lane).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from app.config import CameraConfig
from app.errors import SourceError
from app.frame import ARRIVAL, PRESENTATION
from app.sources.av_demux import av_module, decoded, remuxed
from app.sources.base import Captured, EndOfStream, Source
from app.sources.decode_warning import DecodeWarning
from app.sources.pacer import Pacer

if TYPE_CHECKING:
    import av
    import av.container
    import av.video

log = logging.getLogger(__name__)

#: errors (of demuxing, decoding, or frames already delivered) in a row with no packet further into the file, after
#: which the file is ended where it is: a demuxer that makes no progress can never keep a file read forever
MAX_ERRORS_IN_PLACE = 100


class VideoFileSource(Source):
    """A video file, its first video stream. Not live unless `camera.realtime`.

    `reconnects` is False: a file that fails is not retried. `build_source` sets it for a path that is not there yet
    (a disk not mounted), so that the pipeline waits for it as for a camera; once there, it is read as any file.
    """

    reconnects = False

    def __init__(self, camera: CameraConfig, path: str) -> None:
        self.camera = camera
        self.path = path
        self.description = path
        self.live = camera.realtime
        self._container: av.container.InputContainer | None = None
        self._stream: av.video.VideoStream | None = None
        self._frames: Iterator[av.VideoFrame] = iter(())
        self._pacer: Pacer | None = None
        self._decode_warning = DecodeWarning()
        #: pts of the furthest frame delivered in this pass (None: none with a pts yet)
        self._furthest: int | None = None
        #: frames delivered, and packets that did not demux or decode, in this pass (with camera.loop: since the
        #: last rewind)
        self._delivered = self._skipped = 0
        #: errors (packets that did not demux or decode, frames that came again) since a packet further into the file
        self._errors_in_place = 0

    def open(self) -> None:
        self.close()
        if not os.path.exists(self.path):
            raise SourceError(f"{self.path}: not there (a disk not mounted yet?)")
        try:
            container = av_module().open(self.path)
        except (av_module().error.FFmpegError, OSError) as exc:
            raise SourceError(f"cannot open {self.path} ({exc}): check that it is a video FFmpeg can decode "
                              "(`ffprobe FILE`)") from exc
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.path} has no video stream (`ffprobe FILE` lists what it has)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frames and slices decoded on every core, as OpenCV's FFmpeg backend does
        self._container, self._stream = container, stream
        self.fills_ring = self.ring is not None and remuxed(stream)
        if self.filled_ring is not None:
            self.filled_ring.restart(stream)
        if self.camera.realtime:
            self._pacer = Pacer(self._frame_rate(stream))
        self._start_pass()

    def _frame_rate(self, stream: av.video.VideoStream) -> float:
        """The stream's frames per second, or camera.fps (said) when the file gives none that is usable."""
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        if not 0 < fps < 1000:
            log.warning("%s has no usable frame rate; pacing at camera.fps %g", self.description, self.camera.fps)
            return self.camera.fps
        return fps

    def read(self) -> Captured:
        presented = None if self._pacer is None else self._pacer.wait()
        frame = self._next_frame()
        image = frame.to_ndarray(format="bgr24")
        self._delivered += 1
        if presented is None and not self.fills_ring:
            return Captured(image)  # stamped at its arrival by the capture lane
        stamp = time.monotonic() if presented is None else presented  # the ring knows the stamp the frame gets
        if self.filled_ring is not None and frame.pts is not None:
            self.filled_ring.presented(frame.pts, stamp)
        return Captured(image, t_capture=stamp, stamp=ARRIVAL if presented is None else PRESENTATION)

    def close(self) -> None:
        self._frames = iter(())
        if self._container is not None:
            self._container.close()
            self._container = self._stream = None

    def _next_frame(self) -> av.VideoFrame:
        """The next frame of the file, past the end with `camera.loop`; EndOfStream when there is none."""
        while True:
            frame = next(self._frames, None)
            if frame is not None:
                return frame
            self._end_pass()

    def _start_pass(self) -> None:
        self._furthest, self._delivered, self._skipped = None, 0, 0
        self._frames = self._decoded()

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """Every frame from where the container is to its end, in order, each once; a packet that does not decode
        is skipped and counted."""
        return filter(self._is_new, decoded(self._packets(), self._undecodable))

    def _undecodable(self, packet: av.Packet, why: str) -> None:
        self._skip(f"the packet at byte {packet.pos} does not decode; skipped ({why})")

    def _packets(self) -> Iterator[av.Packet]:
        """The video stream's packets from where the container is to its end; a packet that does not demux is skipped
        and counted. Ends early, said, after MAX_ERRORS_IN_PLACE errors in a row with no packet further in."""
        container, stream = self._container, self._stream
        if container is None or stream is None:
            raise OSError(f"{self.description} is not open")
        furthest = -1
        self._errors_in_place = 0
        while self._errors_in_place < MAX_ERRORS_IN_PLACE:
            try:
                for packet in container.demux(stream):
                    if packet.pos is None or packet.pos > furthest:  # further into the file (or nothing to tell)
                        furthest, self._errors_in_place = max(furthest, packet.pos or 0), 0
                    elif self._errors_in_place >= MAX_ERRORS_IN_PLACE:
                        break
                    if self.filled_ring is not None:
                        self.filled_ring.add(packet)
                    yield packet
                else:
                    return  # the end of the file
            except av_module().error.FFmpegError as exc:  # it ends the generator it came from; a new one reads on
                self._skip(f"the file does not read on after byte {furthest}; skipped ({exc.strerror})")
        log.warning("%s: %d errors in a row without getting further into the file; it ends here", self.description,
                    self._errors_in_place)

    def _is_new(self, frame: av.VideoFrame) -> bool:
        """Whether `frame` comes after every frame delivered: its pts beyond the furthest (a frame without a pts is
        new by its place in decode order, which never goes back). One that is not is counted, not delivered."""
        if frame.pts is None:
            return True
        if self._furthest is not None and frame.pts <= self._furthest:
            self.decode_errors += 1
            self._errors_in_place += 1
            self._decode_warning.say(self.description, f"a frame at pts {frame.pts} comes again (pts "
                                     f"{self._furthest} was delivered); skipped", self.decode_errors)
            return False
        self._furthest = frame.pts
        return True

    def _skip(self, message: str) -> None:
        """Count a frame that did not decode, with a warning at most every DECODE_WARN_EVERY_S."""
        self._skipped += 1
        self.decode_errors += 1
        self._errors_in_place += 1
        self._decode_warning.say(self.description, message, self.decode_errors)

    def _end_pass(self) -> None:
        """The file is at its end: say the frames it lost, then rewind (`camera.loop`) or raise EndOfStream. The
        frames of the stream's frame count (when the container knows it) never delivered are counted too."""
        assert self._container is not None and self._stream is not None
        total = self._stream.frames
        lost = max(total - self._delivered, self._skipped) if total else self._skipped
        self.decode_errors += lost - self._skipped
        if lost:
            of = f"of its {total} frames" if total else "frames"
            log.warning("%s: ended after %d %s: %d did not decode (is the file damaged? `ffprobe FILE`)",
                        self.description, self._delivered, of, lost)
        if not (self.camera.loop and self._delivered):  # a file none of whose frames decodes is not looped over
            raise EndOfStream(self.description)
        self._container.seek(0)
        if self.filled_ring is not None:
            self.filled_ring.restart(self._stream)
        self._start_pass()

