"""`PacketRing`: one camera's encoded video as its source demuxed it, the last seconds of it, for clips.

Owns keeping the source's packets (bytes, pts, dts, keyframe) from the capture thread for the clip recorder in the
output lane: always beginning at a keyframe (a clip must start where a decoder can), covering at least `keep_s` of
stream time, and bounded in bytes (`max_bytes`: the oldest keyframe's group is dropped first, and each packet so
dropped is counted through `on_drop`). Every packet added gets the next index, kept or not, so a reader that finds
an index missing knows the ring lost video it had not taken yet (the source reopened or rewound, the bound hit).

Times: packets carry the stream's pts; the rest of the app knows a frame by its stamp (`t_capture`, monotonic).
The source says which stamp it gave each frame it delivered (`presented`), and the ring maps between the two
(`stream_time`, `stamp`) through the nearest frame it knows, so a recorder can use an object's stamps whatever the
pace the source was read at. The stream's parameters for a remux (`template`) are copied out of the source's
container at `restart`: the source closes and reopens its own.
"""

from __future__ import annotations

import bisect
import io
import threading
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import av
    import av.video

#: the ring never holds more than this, whatever its time span (15 s of a 16 Mbit/s 4K camera is 30 MB)
RING_MAX_BYTES = 32 * 1024 * 1024
#: how late an object's first sighting may reach the recorder after its packets reached the ring: the tracker
#: confirms an object a few inferred frames after it was first seen, and the output lane runs behind the capture
#: by its queue. The ring keeps this much more than the pre-roll
EVENT_DELAY_S = 5.0


class EncodedPacket(NamedTuple):
    """One packet of the stream, as the source demuxed it (pts and dts in the stream's time base)."""

    data: bytes
    pts: int
    dts: int
    keyframe: bool


class PacketRing:
    """The last `keep_s` (and some: from the keyframe before) of one camera's stream, at most `max_bytes`."""

    def __init__(self, keep_s: float, max_bytes: int = RING_MAX_BYTES,
                 on_drop: Callable[[int], None] = lambda count: None) -> None:
        self.keep_s = keep_s
        self.max_bytes = max_bytes
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._packets: deque[tuple[int, EncodedPacket]] = deque()
        self._keyframes: deque[int] = deque()  # the indexes of the keyframes held, oldest first
        self._bytes = 0
        self._next = 0
        #: (stamp, stream seconds) of the frames the source delivered, oldest first
        self._timeline: deque[tuple[float, float]] = deque()
        self.time_base = Fraction(1, 90000)
        #: the stream's parameters, in a container of their own (None before the source opened)
        self.template: av.video.stream.VideoStream | None = None

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def seconds(self, pts: int) -> float:
        return float(pts * self.time_base)

    def restart(self, stream: av.video.stream.VideoStream) -> None:
        """The source (re)opened or rewound `stream`: forget the packets of before, take its parameters, and skip
        an index, so a reader knows the video it had did not go on (its times may go back)."""
        import av

        holder = av.open(io.BytesIO(), "w", format="mp4")  # never written: it only keeps the stream's parameters
        template = holder.add_stream_from_template(stream)
        with self._lock:
            self._packets.clear()
            self._keyframes.clear()
            self._timeline.clear()
            self._bytes = 0
            self._next += 1
            given = stream.time_base  # a Fraction, or PyAV's own rational in newer releases
            self.time_base = Fraction(given.numerator, given.denominator) if given else Fraction(1, 90000)
            self.template = template

    def add(self, packet: av.Packet) -> None:
        """Keep one demuxed packet (the capture thread, as it demuxes); one without timestamps or bytes, or that
        would begin the ring without being a keyframe, only takes its index."""
        index = self._next
        self._next += 1
        if packet.pts is None or packet.dts is None or not packet.size:
            return
        kept = EncodedPacket(bytes(packet), packet.pts, packet.dts, packet.is_keyframe)
        with self._lock:
            if not self._packets and not kept.keyframe:
                return
            self._packets.append((index, kept))
            self._bytes += len(kept.data)
            if kept.keyframe:
                self._keyframes.append(index)
            self._evict()

    def presented(self, pts: int, stamp: float) -> None:
        """The source delivered the frame of `pts` with the stamp `stamp`."""
        with self._lock:
            self._timeline.append((stamp, self.seconds(pts)))

    def _evict(self) -> None:
        """Drop the oldest keyframe's group while the next one still covers `keep_s`, and while over the bound."""
        newest = self.seconds(self._packets[-1][1].pts)
        while len(self._keyframes) > 1 and newest - self._keyframe_seconds(1) >= self.keep_s:
            self._drop_until(self._keyframes[1])
        while self._bytes > self.max_bytes:
            dropped = self._drop_until(self._keyframes[1] if len(self._keyframes) > 1 else self._next)
            self._on_drop(dropped)
        first = self.seconds(self._packets[0][1].pts) if self._packets else float("inf")
        while len(self._timeline) > 1 and self._timeline[1][1] <= first:
            self._timeline.popleft()

    def _keyframe_seconds(self, nth: int) -> float:
        return self.seconds(self._packets[self._keyframes[nth] - self._packets[0][0]][1].pts)

    def _drop_until(self, index: int) -> int:
        """Drop the packets before `index`; how many."""
        dropped = 0
        while self._packets and self._packets[0][0] < index:
            _, packet = self._packets.popleft()
            self._bytes -= len(packet.data)
            dropped += 1
        while self._keyframes and self._keyframes[0] < index:
            self._keyframes.popleft()
        return dropped

    def after(self, index: int) -> list[tuple[int, EncodedPacket]]:
        """The packets held from `index` on, with their indexes (the first index above `index`: some were lost)."""
        with self._lock:
            if not self._packets:
                return []
            start = max(0, index - self._packets[0][0])
            return [self._packets[i] for i in range(start, len(self._packets))]

    def newest(self) -> tuple[int, float] | None:
        """The index and dts (stream seconds) of the newest packet held; None when none is."""
        with self._lock:
            if not self._packets:
                return None
            index, packet = self._packets[-1]
            return index, self.seconds(packet.dts)

    def keyframe_before(self, seconds: float) -> int:
        """The index of the newest keyframe at or before `seconds` (stream time), else of the oldest held; the next
        index when none is held (a clip begins at the next keyframe)."""
        with self._lock:
            if not self._keyframes:
                return self._next
            chosen = self._keyframes[0]
            for n in range(1, len(self._keyframes)):
                if self._keyframe_seconds(n) > seconds:
                    break
                chosen = self._keyframes[n]
            return chosen

    def stream_time(self, stamp: float) -> float | None:
        """The stream time (seconds) of the frame stamped `stamp`, through the nearest frame known; None before any."""
        nearest = self._nearest(stamp, 0)
        return None if nearest is None else nearest[1] + (stamp - nearest[0])

    def stamp(self, seconds: float) -> float | None:
        """The stamp (monotonic) of stream time `seconds`, through the nearest frame known; None before any."""
        nearest = self._nearest(seconds, 1)
        return None if nearest is None else nearest[0] + (seconds - nearest[1])

    def _nearest(self, value: float, field: int) -> tuple[float, float] | None:
        """The frame of the timeline whose stamp (`field` 0) or stream time (1) is nearest `value` (both grow
        frame by frame)."""
        with self._lock:
            timeline = self._timeline
            if not timeline:
                return None
            at = bisect.bisect_left(timeline, value, key=lambda entry: entry[field])
            candidates = [timeline[i] for i in (at - 1, at) if 0 <= i < len(timeline)]
        return min(candidates, key=lambda entry: abs(entry[field] - value))
