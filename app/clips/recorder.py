"""`Recorder`: which clips one camera makes, from its tracked objects' events, and their packets from its ring.

Owns the making of a clip: one per tracked object's life (`new` to `end`), for the objects the planner put in one
(app/clips/planner.py: the labels and zones, and which clip, by name), from `pre_roll_s` before the
object was first seen (the keyframe at or before that, so at most one GOP more) to `post_roll_s` after it was last
seen. An object that comes while a clip is open, its post-roll included, joins that clip (overlapping objects make
one clip); a clip that reaches `max_clip_s` is cut at a keyframe and goes on in the next, which begins there. A
clip never spans video the ring lost (the source reopened or rewound, the ring's bound hit): it ends there, and
the objects still in view go on in a clip from the next keyframe. All times are the stream's (pts), mapped from
the events' stamps by the ring, so a clip is the same however fast the source was read.

The recorder follows the planner's names: an event planned into another clip than the open one ends the open one
where the planner saw it closed (the packet past its post-roll), and `pump` writes no further than the newest packet
the planner had seen, so a clip never ends here before the planner closed it to newcomers.

A clip that fails to write (a full disk) is removed whole and reported (`on_failure`); its objects are followed to
their end all the same, and the next clip tries again. Runs in the clip publisher's worker (app/outputs/clips.py):
`take` each frame's events, then `pump` the packets the ring got since.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.clips.planner import ClipPlanner, clip_end, clip_name, planned_clip
from app.clips.ring import EncodedPacket, PacketRing
from app.clips.writer import SIDECAR, THUMBNAIL, VIDEO, ClipWriter
from app.config.clips import ClipsConfig
from app.frame import wall_clock
from app.scene.tracker import END, NEW, ObjectEvent

if TYPE_CHECKING:
    import av.video

WriterFactory = Callable[[Path, "av.video.stream.VideoStream"], ClipWriter]


@dataclass
class Clip:
    """A clip being made: the planner's name for it, what is in it, and its writer once its first keyframe came."""

    planned: str
    tracks: set[int] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)
    zones: set[str] = field(default_factory=set)
    writer: ClipWriter | None = None
    failed: bool = False
    #: 0: the clip the planner named; N: the N-th that went on from it (cut at max_clip_s, or after lost video)
    part: int = 0
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
                 open_writer: WriterFactory = ClipWriter, planner: ClipPlanner | None = None) -> None:
        """`planner`: the one the output lane runs on the events before they are taken here (their clips named);
        None: the events come unplanned, and a planner of its own plans them in `take`."""
        self.config = config
        self.ring = ring
        self.folder = folder
        self.camera = camera
        self._on_written = on_written
        self._on_failure = on_failure
        self._open_writer = open_writer
        self.planner = planner or ClipPlanner(config, ring, folder, camera)
        self._plans = planner is None
        #: the newest packet index the planner had seen at the frame taken last: a clip ends only where it said
        self._until: int | None = None
        #: the objects of the open clip still in view: track id -> label
        self._live: dict[int, str] = {}
        self.clip: Clip | None = None
        #: the index of the next packet the clip takes from the ring
        self._cursor = 0

    def take(self, events: list[ObjectEvent], now: float, until: int | None = None) -> None:
        """One frame's object events; `now`: its stamp (an update's moment). Planned events come with `until`, the
        planner's `head` when it planned them (`pump` writes no further); unplanned ones are planned here."""
        if self._plans:
            events = self.planner.plan(events, now)
        self._until = until
        for event in events:
            if event.type == END:
                self._ended(event, now)
            elif (name := planned_clip(event)) is not None and self.planner.wanted(event):
                self._seen(event, name, event.start if event.type == NEW else now)

    def _seen(self, event: ObjectEvent, planned: str, since: float) -> None:
        if self.clip is not None and self.clip.planned != planned:  # the planner closed it: it ends in the ring
            self.pump()
            self._finish()
        if self.clip is None:
            start = self.ring.stream_time(since)
            self._cursor = self.ring.keyframe_before(float("-inf") if start is None else start - self.config.pre_roll_s)
            self.clip = Clip(planned)
        self._live[event.track_id] = event.label
        self.clip.tracks.add(event.track_id)
        self.clip.labels.add(event.label)
        self.clip.zones.update(event.zones)
        self.clip.end_at = None

    def _ended(self, event: ObjectEvent, now: float) -> None:
        if self._live.pop(event.track_id, None) is None or self.clip is None:
            return
        end_at = clip_end(self.ring, event, now, self.config.post_roll_s)
        if not self._live:  # the clip's last object left: it ends a post-roll after the latest seen
            self.clip.end_at = end_at if self.clip.end_at is None else max(end_at, self.clip.end_at)

    def pump(self) -> None:
        """Write the packets the ring got since, ending (and beginning) clips on the way."""
        if self.clip is None:
            return
        for index, packet in self.ring.after(self._cursor):
            if self._until is not None and index > self._until:
                return
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
            clip = self.clip = Clip(clip.planned, set(self._live), set(self._live.values()), set(clip.zones),
                                    part=clip.part + 1)
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
        name = clip.planned
        if clip.part or (self.folder / (name + SIDECAR)).exists():  # a later part: named by its own start
            name = self._free_name(clip.start_stamp)
        assert self.ring.template is not None, "the ring holds packets only once the source gave their stream"
        clip.writer = self._open_writer(self.folder / name, self.ring.template)

    def _free_name(self, stamp: float) -> str:
        """The name of a clip starting at `stamp` that no clip in the folder has."""
        start, taken = wall_clock(stamp), 0
        while (self.folder / (clip_name(start, self.camera, taken) + SIDECAR)).exists():
            taken += 1
        return clip_name(start, self.camera, taken)

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
