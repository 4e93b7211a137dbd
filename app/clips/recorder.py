"""`Recorder`: which clips one camera makes, from its tracked objects' events, and their packets from its ring.

Owns the rule of a clip: one per tracked object's life (`new` to `end`), for the objects whose label is one of
`clips.labels` and that are seen in one of `clips.zones` (either list empty: any), from `pre_roll_s` before the
object was first seen (the keyframe at or before that, so at most one GOP more) to `post_roll_s` after it was last
seen. An object that comes while a clip is open, its post-roll included, joins that clip (overlapping objects make
one clip); a clip that reaches `max_clip_s` is cut at a keyframe and goes on in the next, which begins there. A
clip never spans video the ring lost (the source reopened or rewound, the ring's bound hit): it ends there, and
the objects still in view go on in a clip from the next keyframe. All times are the stream's (pts), mapped from
the events' stamps by the ring, so a clip is the same however fast the source was read.

A clip that fails to write (a full disk) is removed whole and reported (`on_failure`); its objects are followed to
their end all the same, and the next clip tries again. Runs in the clip publisher's worker (app/outputs/clips.py):
`take` each frame's events, then `pump` the packets the ring got since.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from app.clips.ring import EncodedPacket, PacketRing
from app.clips.writer import SIDECAR, THUMBNAIL, VIDEO, ClipWriter
from app.config.clips import ClipsConfig
from app.frame import wall_clock
from app.names import safe_name
from app.scene.tracker import END, NEW, ObjectEvent

if TYPE_CHECKING:
    import av.video

WriterFactory = Callable[[Path, "av.video.stream.VideoStream"], ClipWriter]


def clip_name(ts: float, camera: str, taken: int = 0) -> str:
    """`YYYYmmdd-HHMMSS-mmmZ_<camera>` (UTC, the clip's start), with `-N` after the `Z` for the N-th other clip that
    would have that name."""
    stamp = datetime.fromtimestamp(ts, timezone.utc)
    again = f"-{taken}" if taken else ""
    return f"{stamp:%Y%m%d-%H%M%S}-{stamp.microsecond // 1000:03d}Z{again}_{safe_name(camera)}"


@dataclass
class Clip:
    """A clip being made: what is in it, and its writer once its first keyframe came."""

    tracks: set[int] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)
    zones: set[str] = field(default_factory=set)
    writer: ClipWriter | None = None
    failed: bool = False
    #: stream times (seconds): its first packet's, the latest frame written, and past which it ends (None while an
    #: object of it is in view)
    start_s: float = 0.0
    last_s: float = 0.0
    end_at: float | None = None
    #: the stamps (monotonic) of its first frame and of the latest written, taken as they are written
    start_stamp: float = 0.0
    last_stamp: float = 0.0


class Recorder:
    def __init__(self, config: ClipsConfig, ring: PacketRing, folder: Path, camera: str,
                 on_written: Callable[[Path], None], on_failure: Callable[[str, Exception], None],
                 open_writer: WriterFactory = ClipWriter) -> None:
        self.config = config
        self.ring = ring
        self.folder = folder
        self.camera = camera
        self._on_written = on_written
        self._on_failure = on_failure
        self._open_writer = open_writer
        self._labels, self._zones = set(config.labels), set(config.zones)
        #: the objects of the open clip still in view: track id -> label
        self._live: dict[int, str] = {}
        self.clip: Clip | None = None
        #: the index of the next packet the clip takes from the ring
        self._cursor = 0

    def take(self, events: list[ObjectEvent], now: float) -> None:
        """One frame's object events; `now`: its stamp (an update's moment)."""
        for event in events:
            if event.type == END:
                self._ended(event, now)
            elif self._wanted(event):
                self._seen(event, event.start if event.type == NEW else now)

    def _wanted(self, event: ObjectEvent) -> bool:
        return ((not self._labels or event.label in self._labels)
                and (not self._zones or not self._zones.isdisjoint(event.zones)))

    def _seen(self, event: ObjectEvent, since: float) -> None:
        if self.clip is None:
            start = self.ring.stream_time(since)
            self._cursor = self.ring.keyframe_before(float("-inf") if start is None else start - self.config.pre_roll_s)
            self.clip = Clip()
        self._live[event.track_id] = event.label
        self.clip.tracks.add(event.track_id)
        self.clip.labels.add(event.label)
        self.clip.zones.update(event.zones)
        self.clip.end_at = None

    def _ended(self, event: ObjectEvent, now: float) -> None:
        if self._live.pop(event.track_id, None) is None or self.clip is None:
            return
        last = self.ring.stream_time(now if event.end is None else event.end)
        end_at = (float("-inf") if last is None else last) + self.config.post_roll_s
        if not self._live:  # the clip's last object left: it ends a post-roll after the latest seen
            self.clip.end_at = end_at if self.clip.end_at is None else max(end_at, self.clip.end_at)

    def pump(self) -> None:
        """Write the packets the ring got since, ending (and beginning) clips on the way."""
        if self.clip is None:
            return
        for index, packet in self.ring.after(self._cursor):
            lost = index != self._cursor
            self._cursor = index + 1
            self._place(packet, lost)
            if self.clip is None:
                return

    def _place(self, packet: EncodedPacket, lost: bool) -> None:
        clip = self.clip
        assert clip is not None
        at = self.ring.seconds(packet.pts)
        if clip.end_at is not None and self.ring.seconds(packet.dts) > clip.end_at:
            self._finish()
            return
        started = clip.writer is not None or clip.failed
        if started and (lost or packet.keyframe and at - clip.start_s >= self.config.max_clip_s):
            self._finish()
            if not self._live:
                return
            clip = self.clip = Clip(set(self._live), set(self._live.values()), set(clip.zones))
        if clip.writer is None and not clip.failed:
            if not packet.keyframe:
                return  # a clip begins at a keyframe
            clip.start_s = clip.last_s = at
            self._attempt(clip, lambda: self._open(clip))
        if clip.writer is not None:
            writer = clip.writer
            self._attempt(clip, lambda: writer.write(packet))
            if at >= clip.last_s:
                clip.last_s, clip.last_stamp = at, self.ring.stamp(at) or clip.last_stamp

    def _open(self, clip: Clip) -> None:
        clip.start_stamp = clip.last_stamp = self.ring.stamp(clip.start_s) or 0.0
        taken = 0
        while (self.folder / (name := clip_name(wall_clock(clip.start_stamp), self.camera, taken) + SIDECAR)).exists():
            taken += 1
        assert self.ring.template is not None, "the ring holds packets only once the source gave their stream"
        clip.writer = self._open_writer(self.folder / name.removesuffix(SIDECAR), self.ring.template)

    def _attempt(self, clip: Clip, action: Callable[[], None]) -> None:
        """Run a write of `clip`; on failure, remove the clip whole and report it (the clip is followed on)."""
        try:
            action()
        except (OSError, ValueError) as exc:
            if clip.writer is not None:
                clip.writer.abort()
            clip.writer, clip.failed = None, True
            self._on_failure(f"clip of {', '.join(sorted(clip.labels))} not written", exc)

    def close(self) -> None:
        """The run ends: the open clip ends where the ring is."""
        self.pump()
        self._finish()

    def _finish(self) -> None:
        clip, self.clip = self.clip, None
        if clip is None or clip.writer is None:
            return
        writer = clip.writer
        self._attempt(clip, lambda: writer.finish(self._sidecar(clip, writer)))
        if not clip.failed:
            self._on_written(writer.video)

    def _sidecar(self, clip: Clip, writer: ClipWriter) -> dict:
        """What the clip is, for a reader that never opens the video."""
        start, end = clip.start_stamp, clip.last_stamp
        base = writer.video.with_suffix("")
        return {"camera": self.camera, "labels": sorted(clip.labels), "track_ids": sorted(clip.tracks),
                "zones": sorted(clip.zones), "start_ts": round(wall_clock(start), 3),
                "end_ts": round(wall_clock(end), 3),
                "start_stamp": round(start, 6), "end_stamp": round(end, 6),
                "duration_s": round(clip.last_s - clip.start_s, 3), "bytes": writer.bytes,
                "video": base.name + VIDEO, "thumbnail": base.name + THUMBNAIL}
