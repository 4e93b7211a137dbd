"""Tracking: one id per object while it is in view, and its life as events.

Association is SORT's: each track's box is predicted one frame on by its Kalman filter (app/scene/kalman.py), and
detections are assigned to the predictions by IoU (the optimal assignment, at least `iou`, less CENTRE_WEIGHT times
DIoU's distance between the centres; app/scene/association.py), whatever their label, so a cat whose breed flickers
between frames keeps its id; a track not matched goes on along its predicted path, so an object hidden for a few
frames is found again. A detection left over starts a tentative track, unless it overlaps a matched or
better-scoring one by DUPLICATE_IOU (one object seen twice, under two labels); `min_hits` matches in a row confirm
it (`new`; a miss starts the count again; with `confirm_at_start`, in the run's first `min_hits` frames one is
enough); a track not matched for `max_lost` frames ends (`end`). With `smooth`, a tracked detection's box is the
filter's estimate. With `coast`, a confirmed track lost for up to that many frames is still handed on, as its last
detection at the box its filter predicts, marked `coasted` (online: nothing is looked ahead or filled in later).
Its label is the one with the highest summed score so far ("settled"). It is `stationary` once its box has kept an
IoU of at least STILL_IOU with where it stopped for `stationary_s`.

Every change of a confirmed track (label, stationary, moving) is one `update` event listing what changed. Usable on
its own: detections in, tracked detections and events out. Zones and lines are not its business: their monitors
are fed the tracks it saw (`seen`), and app/scene/scene.py merges their changes into these events. Owns no I/O:
the `track` stage (app/stages/track.py) feeds it frames. Time is the frames' `t_capture` (seconds).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

import numpy as np

from app.config import TrackParams
from app.frame import Detection
from app.scene import kalman
from app.scene.association import assign, centre_distance, iou_matrix

#: a box that keeps this IoU with where it stopped has not moved
STILL_IOU = 0.8
#: how much the distance between a predicted box's centre and a detection's (DIoU's penalty) counts against
#: their IoU in the assignment: two people crossing overlap both predictions alike, the nearer centre decides
CENTRE_WEIGHT = 4.0
#: an unmatched detection overlapping a matched or better one this much is the same object seen twice
DUPLICATE_IOU = 0.4
NEW, UPDATE, END = "new", "update", "end"

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ObjectEvent:
    """One moment in a tracked object's life. `changes` says what an update is about, e.g. `entered:driveway`,
    `left:driveway`, `crossed:gate:in`, `loitering:driveway`, `label`, `stationary`, `moving`."""

    type: str
    track_id: int
    label: str
    score: float
    box: Box
    zones: tuple[str, ...]
    start: float
    end: float | None
    stationary: bool
    changes: tuple[str, ...] = ()
    seq: int = 0
    #: where the clip the object is in is served (app/clips/planner.py); None: in no clip
    clip_url: str | None = None
    #: the track's taught name (its majority, app/teach/verdicts.py); None: no name
    name: str | None = None

    def as_dict(self) -> dict:
        document = {"type": self.type, "track_id": self.track_id, "label": self.label, "score": round(self.score, 4),
                    "box": [round(v, 1) for v in self.box], "zones": list(self.zones), "start": round(self.start, 3),
                    "end": None if self.end is None else round(self.end, 3), "stationary": self.stationary,
                    "changes": list(self.changes)}
        if self.clip_url is not None:
            document["clip_url"] = self.clip_url
        if self.name is not None:
            document["name"] = self.name
        return document


@dataclass
class TrackedObject:
    id: int
    box: np.ndarray
    start: float
    last_seen: float
    motion: np.ndarray = field(default_factory=lambda: np.zeros((5, 4)))  # its Kalman state (app/scene/kalman.py)
    hits: int = 1
    lost: int = 0
    confirmed: bool = False
    scores: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    best_score: float = 0.0
    label: str = ""
    #: the last detection that continued it
    detection: Detection | None = None
    still_box: np.ndarray | None = None
    still_since: float = 0.0
    stationary: bool = False

    def as_box(self) -> Box:
        x0, y0, x1, y1 = (float(v) for v in self.box)
        return x0, y0, x1, y1


class Tracker:
    """Feed it each inferred frame's detections with `update`; it returns them with track ids, and the events of
    the frame. `finish` ends every track (the source ended or the run stops)."""

    def __init__(self, params: TrackParams) -> None:
        self.params = params
        self.tracks: list[TrackedObject] = []
        #: the tracks the last frame's detections went to, tentative ones too, in the order of its detections
        self.seen: list[TrackedObject] = []
        self._next_id = 1
        self._frames = 0  # updated so far

    @property
    def active(self) -> bool:
        """Whether an object that is not stationary is in view, tracked or about to be: motion gating keeps
        inferring while one is (a stationary one is checked at the keep-alive, or as soon as something moves, as
        Frigate does)."""
        return any(not track.stationary for track in self.tracks)

    def update(self, detections: list[Detection], now: float, seq: int = 0) -> tuple[list[Detection],
                                                                                       list[ObjectEvent]]:
        boxes = np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4)
        self._frames += 1
        starting = self.params.confirm_at_start and self._frames <= self.params.min_hits  # confirmed at once
        matched = self._match(boxes)
        events: list[ObjectEvent] = []
        out: list[Detection] = []
        duplicates = self._duplicates(boxes, detections, set(matched))
        self.seen = []
        for column, detection in enumerate(detections):
            known = matched.get(column)
            if known is None and column in duplicates:
                out.append(detection)
                continue
            if known is None:
                track = TrackedObject(self._next_id, boxes[column].copy(), now, now,
                                      kalman.initiate(boxes[column:column + 1])[0],
                                      still_box=boxes[column].copy(), still_since=now)
                self._next_id += 1
                self.tracks.append(track)
                self._observe(track, detection)
            else:
                track = known
                self._move(track, boxes[column], now)
                self._observe(track, detection)
            self.seen.append(track)
            changes = self._follow(track, now)
            if not track.confirmed and (track.hits >= self.params.min_hits or starting):
                track.confirmed = True
                events.append(object_event(NEW, track, seq))
            elif track.confirmed and changes:
                events.append(object_event(UPDATE, track, seq, changes))
            out.append(self._tracked(detection, track))
        for track in [t for t in self.tracks if t.lost > (self.params.max_lost if t.confirmed
                                                           else self.params.min_hits)]:
            self.tracks.remove(track)
            if track.confirmed:
                events.append(object_event(END, track, seq, end=track.last_seen))
        return out + self._coasting(), events

    def _match(self, boxes: np.ndarray) -> dict[int, TrackedObject]:
        """Move every track's Kalman state one frame on, assign the detections' boxes to the predicted ones, and
        correct the states of the tracks matched; {detection's index: its track}. A track not matched is lost one
        more frame, and a tentative one starts counting its hits again: `min_hits` are in a row."""
        if not self.tracks:
            return {}
        states = kalman.predict(np.stack([track.motion for track in self.tracks]))
        predicted = kalman.boxes_of(states)
        pairs = assign(iou_matrix(predicted, boxes), self.params.iou,
                       CENTRE_WEIGHT * centre_distance(predicted, boxes))
        rows = [row for row, _ in pairs]
        states[rows] = kalman.update(states[rows], boxes[[column for _, column in pairs]])
        for track, state in zip(self.tracks, states, strict=True):
            track.motion = state
        matched = {column: self.tracks[row] for row, column in pairs}
        for row in set(range(len(self.tracks))) - set(rows):
            track = self.tracks[row]
            track.lost += 1
            if not track.confirmed:
                track.hits = 0
        return matched

    def _tracked(self, detection: Detection, track: TrackedObject) -> Detection:
        """The detection as the tracker hands it on: with its track id once the track is confirmed, and then, with
        `smooth`, the filter's box in place of the model's."""
        if not track.confirmed:
            return detection
        if self.params.smooth:
            return replace(detection, track_id=track.id, box=kalman.box_of(track.motion))
        return replace(detection, track_id=track.id)

    def _coasting(self) -> list[Detection]:
        """The confirmed tracks lost for 1 to `coast` frames, each as its last detection at the box its filter
        predicts for this frame, with its id and `coasted`: the frames it has been lost (what other stages had
        attached to that detection, which was about where it was, is left off)."""
        return [replace(track.detection, box=kalman.box_of(track.motion), track_id=track.id,
                        attributes={"coasted": track.lost})
                for track in self.tracks
                if track.confirmed and 0 < track.lost <= self.params.coast and track.detection is not None]

    @staticmethod
    def _duplicates(boxes: np.ndarray, detections: list[Detection], matched: set[int]) -> set[int]:
        """Unmatched detections that overlap a matched or a better-scoring one by DUPLICATE_IOU: the same object
        seen twice (two breeds for one cat), which must not start a second track."""
        overlap = iou_matrix(boxes, boxes)
        duplicates = set()
        for column in sorted(range(len(detections)), key=lambda i: -detections[i].score):
            if column in matched:
                continue
            kept = [other for other in range(len(detections))
                    if other != column and other not in duplicates
                    and (other in matched or detections[other].score >= detections[column].score)]
            if any(overlap[column, other] >= DUPLICATE_IOU for other in kept):
                duplicates.add(column)
        return duplicates

    def finish(self, seq: int = 0) -> list[ObjectEvent]:
        """End every confirmed track now."""
        events = [object_event(END, t, seq, end=t.last_seen) for t in self.tracks if t.confirmed]
        self.tracks.clear()
        return events

    def _move(self, track: TrackedObject, box: np.ndarray, now: float) -> None:
        track.box = box.copy()
        track.hits += 1
        track.lost = 0
        track.last_seen = now

    def _observe(self, track: TrackedObject, detection: Detection) -> None:
        track.detection = detection
        track.scores[detection.label] += detection.score
        track.best_score = max(track.best_score, detection.score)

    def _follow(self, track: TrackedObject, now: float) -> list[str]:
        """Bring the track's label and stillness up to this frame; what changed."""
        changes = []
        label = max(track.scores, key=lambda name: track.scores[name])
        if label != track.label and track.scores[label] > track.scores.get(track.label, 0.0):  # a tie keeps it
            if track.label and track.confirmed:
                changes.append("label")
            track.label = label
        changes += self._stillness(track, now)
        return changes

    def _stillness(self, track: TrackedObject, now: float) -> list[str]:
        assert track.still_box is not None
        if iou_matrix(track.box[None], track.still_box[None])[0, 0] < STILL_IOU:
            track.still_box, track.still_since = track.box.copy(), now
            if track.stationary:
                track.stationary = False
                return ["moving"]
        elif not track.stationary and now - track.still_since >= self.params.stationary_s:
            track.stationary = True
            return ["stationary"]
        return []


def object_event(kind: str, track: TrackedObject, seq: int, changes: list[str] | tuple[str, ...] = (),
                 end: float | None = None) -> ObjectEvent:
    """The event `kind` of `track` at frame `seq`; its zones are the scene's to name (app/scene/scene.py)."""
    return ObjectEvent(kind, track.id, track.label, track.best_score, track.as_box(), (), track.start, end,
                       track.stationary, tuple(changes), seq)
