"""What the sources read through PyAV (a video file, a network stream) share: PyAV imported only when one opens,
each demuxed packet decoded with the one that does not decode skipped (the source counts it), and which codecs a
clip keeps as they came.

A PyAV source demuxes once: with clips on, the packets of a REMUXED_CODECS stream go into the camera's ring
(app/clips/ring.py) as they are, and the same packets are decoded for inference. Any other codec (an MJPEG
camera's JPEGs) is not what a browser plays in an MP4: its decoded frames are encoded for clips by the capture lane
(app/clips/encoder.py), as a raw camera's are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import av
    import av.video

#: the codecs whose packets clips keep as the source demuxed them (remuxed, never re-encoded)
REMUXED_CODECS = frozenset({"h264", "hevc"})


def av_module() -> ModuleType:
    """PyAV, imported when a PyAV source first opens: its FFmpeg libraries take about 15 MB, which a run on a
    camera or on images never needs."""
    import av

    return av


def remuxed(stream: av.video.VideoStream) -> bool:
    """Whether clips keep `stream`'s own packets (H.264, H.265) rather than encoding its frames."""
    return stream.codec_context.name in REMUXED_CODECS


def decoded(packets: Iterable[av.Packet], skip: Callable[[av.Packet, str], None]) -> Iterator[av.VideoFrame]:
    """The frames of `packets`, in order; a packet that does not decode is handed to `skip` with FFmpeg's reason,
    and decoding goes on with the next."""
    for packet in packets:
        try:
            frames = packet.decode()
        except av_module().error.FFmpegError as exc:
            skip(packet, exc.strerror or str(exc))
            continue
        yield from frames
