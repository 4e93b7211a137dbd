"""Events: when a watched label appears, changes count or disappears — with hysteresis.

One flickering frame must not fire an event: a new count becomes the current count only after it has held for
`appear_frames` frames, and a label clears only after `clear_frames` frames without it. MQTT, snapshots and
webhooks all read the same events, computed once per frame in the output lane.

Events within one frame come in a fixed order, so MQTT and webhooks send them in the same order on every run:
watched labels (`publish.labels`) in their configured order; with no watched labels (every label counts), by
label, sorted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from app.frame import Frame


@dataclass(frozen=True)
class Event:
    """`kind` is appeared (0 → n), changed (n → m) or cleared (n → 0)."""

    kind: str
    label: str
    count: int
    previous: int


class LabelEvents:
    def __init__(self, labels: list[str] | None, min_score: float, appear_frames: int, clear_frames: int,
                 tracked_only: bool = False) -> None:
        self.labels = set(labels) if labels else None
        #: with the track stage: only tracked objects count (not a second box on one object, nor a flicker)
        self.tracked_only = tracked_only
        self.min_score = min_score
        self.appear_frames = appear_frames
        self.clear_frames = clear_frames
        #: the current (stable) count of every label seen; watched labels start at 0
        self.counts: dict[str, int] = dict.fromkeys(labels or (), 0)
        self._candidate: dict[str, tuple[int, int]] = {}  # label -> (count, frames it has held)

    def update(self, frame: Frame) -> list[Event]:
        """Feed one processed frame; return the events it completes."""
        raw = Counter(d.label for d in frame.detections
                      if d.score >= self.min_score and (self.labels is None or d.label in self.labels)
                      and (d.track_id is not None or not self.tracked_only))
        events = []
        for label in self._in_order(raw):
            seen, current = raw.get(label, 0), self.counts.get(label, 0)
            if seen == current:
                self._candidate.pop(label, None)
                continue
            count, held = self._candidate.get(label, (seen, 0))
            held = held + 1 if count == seen else 1
            self._candidate[label] = (seen, held)
            if held >= (self.clear_frames if seen == 0 else self.appear_frames):
                del self._candidate[label]
                self.counts[label] = seen
                kind = "appeared" if current == 0 else "cleared" if seen == 0 else "changed"
                events.append(Event(kind, label, seen, current))
        return events

    def reconfigured(self, labels: list[str] | None, min_score: float, appear_frames: int, clear_frames: int,
                     tracked_only: bool = False) -> LabelEvents:
        """The same, with a reload's settings: the counts of the labels it still counts go on (no event fires for
        a label only because of the reload); a newly watched label starts at 0."""
        new = LabelEvents(labels, min_score, appear_frames, clear_frames, tracked_only)
        for label, count in self.counts.items():
            if new.labels is None or label in new.labels:
                new.counts[label] = count
        return new

    def _in_order(self, raw: Counter[str]) -> list[str]:
        """The labels to look at this frame: watched ones as configured (`counts` holds them all, in that order),
        else every label counted or seen, sorted."""
        if self.labels is not None:
            return list(self.counts)
        return sorted(self.counts.keys() | raw.keys())
