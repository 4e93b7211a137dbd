"""`ClipPlanner`: which clip each tracked object's events belong to, decided as the events are seen.

Owns the clip rule's decisions that an event's reader needs before the clip exists: whether an object makes a clip
(its label one of `clips.labels`, seen in one of `clips.zones`; either list empty: any), and which clip it is in.
An object seen while no clip is open begins one, named when it begins (`clip_name`, by its planned start:
`pre_roll_s` before the object was first seen, UTC); an object seen while a clip is open joins it. A clip is
closed to newcomers once its last object left and the camera's ring holds a packet past its post-roll (the same
packet at which its recorder ends it, app/clips/recorder.py). Each event of an object in a clip gets the clip's URL
(`ObjectEvent.clip_url`), so MQTT, webhooks and the page say where its clip will be as the object comes and goes.

Run by the output lane on each frame's object events before any publisher gets them (through the clip publisher,
app/outputs/clips.py), and the recorder follows the names it gave: one decision, made once. An object that outlives
`max_clip_s` keeps the URL of the clip it began in.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from app.clips.ring import PacketRing
from app.clips.writer import SIDECAR, VIDEO
from app.config.clips import ClipsConfig
from app.frame import wall_clock
from app.names import safe_name
from app.scene.tracker import END, NEW, ObjectEvent

#: where the HTTP output serves a clip's video: CLIPS_PATH + NAME + .mp4
CLIPS_PATH = "/clips/"


def clip_name(ts: float, camera: str, taken: int = 0) -> str:
    """`YYYYmmdd-HHMMSS-mmmZ_<camera>` (UTC, the clip's start), with `-N` after the `Z` for the N-th other clip that
    would have that name."""
    stamp = datetime.fromtimestamp(ts, timezone.utc)
    again = f"-{taken}" if taken else ""
    return f"{stamp:%Y%m%d-%H%M%S}-{stamp.microsecond // 1000:03d}Z{again}_{safe_name(camera)}"


def clip_url(base: str, name: str) -> str:
    """The URL of clip `name`'s video under `base` (`http://host:port`, or "" for a path from the server's root)."""
    return f"{base}{CLIPS_PATH}{name}{VIDEO}"


def planned_clip(event: ObjectEvent) -> str | None:
    """The name of the clip the planner put `event` in; None: in none."""
    if event.clip_url is None:
        return None
    return event.clip_url.rsplit("/", 1)[-1].removesuffix(VIDEO)


def clip_end(ring: PacketRing, event: ObjectEvent, now: float, post_roll_s: float) -> float:
    """The stream time past which a clip whose last object ended with `event` (taken at `now`) ends."""
    last = ring.stream_time(now if event.end is None else event.end)
    return (float("-inf") if last is None else last) + post_roll_s


class ClipPlanner:
    def __init__(self, config: ClipsConfig, ring: PacketRing, folder: Path, camera: str, url_base: str = "") -> None:
        self.config = config
        self.ring = ring
        self.folder = folder
        self.camera = camera
        self.url_base = url_base
        self._labels, self._zones = set(config.labels), set(config.zones)
        #: the open clip's name, its objects still in view, and the stream time past which it ends (None while one
        #: of them is in view)
        self._open: str | None = None
        self._live: set[int] = set()
        self._end_at: float | None = None
        #: every object in view that is in a clip: track id -> the clip's name
        self._clip_of: dict[int, str] = {}
        self._last_name = ""
        #: the ring's newest packet index when the last frame was planned (its recorder writes up to it)
        self.head: int | None = None

    def wanted(self, event: ObjectEvent) -> bool:
        """Whether the object of `event` makes (or joins) a clip: its label and zones."""
        return ((not self._labels or event.label in self._labels)
                and (not self._zones or not self._zones.isdisjoint(event.zones)))

    def plan(self, events: list[ObjectEvent], now: float) -> list[ObjectEvent]:
        """One frame's object events (`now`: its stamp), those of objects in a clip with the clip's URL."""
        newest = self.ring.newest()
        self.head = None if newest is None else newest[0]
        if self._end_at is not None and newest is not None and newest[1] > self._end_at:
            self._open, self._end_at = None, None  # the recorder ends it at that packet: closed to newcomers
        return [self._planned(event, now) for event in events]

    def _planned(self, event: ObjectEvent, now: float) -> ObjectEvent:
        if event.type == END:
            name = self._clip_of.pop(event.track_id, None)
            if event.track_id in self._live:
                self._live.discard(event.track_id)
                if not self._live:
                    end_at = clip_end(self.ring, event, now, self.config.post_roll_s)
                    self._end_at = end_at if self._end_at is None else max(end_at, self._end_at)
        elif self.wanted(event):
            name = self._clip_of.get(event.track_id) or self._join(event.start if event.type == NEW else now)
            self._clip_of[event.track_id] = name
            if name == self._open:
                self._live.add(event.track_id)
                self._end_at = None
        else:
            name = self._clip_of.get(event.track_id)
        return event if name is None else replace(event, clip_url=clip_url(self.url_base, name))

    def _join(self, since: float) -> str:
        """The open clip's name, or a new clip's, beginning a pre-roll before `since` (a stamp)."""
        if self._open is None:
            start = wall_clock(since) - self.config.pre_roll_s
            taken = 0
            while ((name := clip_name(start, self.camera, taken)) == self._last_name
                   or (self.folder / (name + SIDECAR)).exists()):
                taken += 1
            self._open = self._last_name = name
        return self._open
