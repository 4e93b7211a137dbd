"""What a run makes of the taught examples, frame by frame: names on detections, `--not` detections dropped.

The crop stage hands each frame here with the embedding of every detection it has one for (run this frame, or the
track's last) and which of them were run this frame. A detection without a track is judged on its own embedding. A
tracked one takes its track's verdict: every embedding run on the track that is near an example is one vote (its
name, or its `--not`; nothing near is no vote), and the track takes the answer with the most votes over its life
(the first to reach it on a tie), so one odd crop does not rename or drop an object.

A detection whose verdict is a `--not` example is dropped from the frame's detections and counted (`taught_not`),
and the zones it is in count one object less. The crop stage embeds the detections of a label taught before their
track is confirmed too (each judged on its own), so a false positive the tracker never confirms is dropped all the
same, and an object is named from its first frame. The tracker reports a track's `new` event in the frame it is
confirmed, before the crop stage runs: a track judged `--not` by then has its `new` withheld, and every later event
of it too (`end` included) for its life. What is still seen of such a track: a crossing of a line (counted by the
tracker), the `end` the track stage gives when the run stops, and a track that turns `--not` only after its `new`
went out, whose events go on while its detections are dropped. A detection whose verdict is a name carries `name`
and `similarity` (its track's latest vote for that name), and the frame's object events of its track carry `name`
(so MQTT, webhooks and Home Assistant's event entity see who it is; its `end` too, judged before it is forgotten).

When the gallery file is written while the run goes on (app/teach/watch.py), the new examples apply from the next
frame: every track's votes start over from its latest embedding (the crop stage hands it on every frame), judged
against the new examples, so "this is" or "this is not" taught on a track in view applies to it at once; a track
whose events were withheld stays withheld.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from app.frame import Detection, Frame
from app.scene.tracker import END, NEW, ObjectEvent
from app.teach.matching import Match, Matcher
from app.teach.watch import GalleryWatch

#: the reason the stats give for the detections dropped as near a `--not` example
TAUGHT_NOT = "taught_not"


@dataclass
class Votes:
    """A track's answers so far: how many votes each (name, positive) got, and its latest match of each."""

    counts: Counter[tuple[str, bool]] = field(default_factory=Counter)
    latest: dict[tuple[str, bool], Match] = field(default_factory=dict)

    def add(self, match: Match) -> None:
        key = (match.name, match.positive)
        self.counts[key] += 1
        self.latest[key] = match

    def majority(self) -> Match | None:
        if not self.counts:
            return None
        key, _ = self.counts.most_common(1)[0]
        return self.latest[key]


class Verdicts:
    def __init__(self, matcher: Matcher, watch: GalleryWatch | None = None) -> None:
        self.matcher = matcher
        #: the gallery file, read again when written (None: the matcher stays as made)
        self._watch = watch
        #: detections dropped as near a `--not` example, since the start
        self.taught_not = 0
        self._votes: dict[int, Votes] = {}
        self._hidden: set[int] = set()

    def carry_on(self, earlier: Verdicts) -> None:
        """Take over `earlier`'s count and tracks (a reload, the gallery read again): a track keeps its votes, and
        one whose `new` was withheld stays withheld to its `end`."""
        self.taught_not, self._votes, self._hidden = earlier.taught_not, earlier._votes, earlier._hidden

    def name_of(self, track_id: int) -> str | None:
        """The name a live track carries (its majority, when that is a name), else None."""
        votes = self._votes.get(track_id)
        majority = votes.majority() if votes is not None else None
        return majority.name if majority is not None and majority.positive else None

    def judge(self, frame: Frame, vectors: list[np.ndarray | None], fresh: set[int]) -> None:
        """Name, keep or drop each of `frame`'s detections (`vectors`: each one's embedding or None; `fresh`: the
        indices embedded this frame), and withhold the object events of tracks judged `--not`."""
        if self._watch is not None and (matcher := self._watch.changed()) is not None:
            self.matcher, fresh = matcher, {i for i, vector in enumerate(vectors) if vector is not None}
            self._votes.clear()  # judged again from each track's latest embedding
        kept: list[Detection] = []
        for i, detection in enumerate(frame.detections):
            verdict = self._verdict(detection, vectors[i], i in fresh)
            if verdict is None:
                kept.append(detection)
            elif verdict.positive:
                kept.append(replace(detection, attributes={**detection.attributes, "name": verdict.name,
                                                           "similarity": round(verdict.similarity, 3)}))
            else:
                self.taught_not += 1
                for zone in detection.zones:
                    frame.zone_counts[zone] = max(0, frame.zone_counts.get(zone, 0) - 1)
        frame.detections = kept
        named = [self._named(event) for event in frame.objects]  # before an `end` forgets its track
        frame.objects = [event for event in named if self._shown(event.type, event.track_id)]

    def _verdict(self, detection: Detection, vector: np.ndarray | None, fresh: bool) -> Match | None:
        if detection.track_id is None:
            return None if vector is None else self.matcher.match(vector, detection.label)
        if fresh and vector is not None and (match := self.matcher.match(vector, detection.label)) is not None:
            self._votes.setdefault(detection.track_id, Votes()).add(match)
        votes = self._votes.get(detection.track_id)
        return None if votes is None else votes.majority()

    def _named(self, event: ObjectEvent) -> ObjectEvent:
        """`event` with its track's name, when the track has one."""
        name = self.name_of(event.track_id)
        return event if name is None else replace(event, name=name)

    def _shown(self, event_type: str, track_id: int) -> bool:
        """Whether an object event goes out: not one of a track whose `new` came while it was judged `--not`."""
        if event_type == NEW and (votes := self._votes.get(track_id)) is not None:
            majority = votes.majority()
            if majority is not None and not majority.positive:
                self._hidden.add(track_id)
        shown = track_id not in self._hidden
        if event_type == END:
            self._votes.pop(track_id, None)
            self._hidden.discard(track_id)
        return shown
