"""person_down: a tracked person whose pose says they are down (fallen, lying) for `down_s` seconds.

Fed each frame's tracked persons with their keypoints (the crop stage's `keypoints` attribute: name, x, y, score in
source pixels), it says which tracks have now been down for `down_s` seconds. A person is down when the torso lies
near horizontal (more than `angle` degrees from vertical: from the shoulders' midpoint to the hips', or, with the
hips unseen, square to the line of the shoulders), or when the head is low in the person's box (more than
`low_in_box` of the way down). Keypoints scoring below `min_keypoint_score` are not used, and a person with too
few to judge is not down. Each episode fires once; a frame in which the person is up ends it, so a person who gets
up and falls again fires again. Time is the frames' stamps (seconds), never the clock. The scene
(app/scene/scene.py) turns what it says into `person_down` object events.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from app.config.pipeline import PersonDownParams

#: the object event's type, and the attribute its keypoints come from
PERSON_DOWN = "person_down"
KEYPOINTS = "keypoints"
SHOULDERS, HIPS = ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")
HEAD = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")

Point = tuple[float, float]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Posed:
    """One tracked person of a frame: its track, its box and its keypoints (as the crop stage attached them)."""

    track_id: int
    box: Box
    keypoints: Sequence[dict[str, Any]]


def torso_angle(seen: dict[str, Point]) -> float | None:
    """Degrees from vertical of the torso (0 upright or upside down, 90 lying), or None when it cannot be told."""
    shoulders = [seen[name] for name in SHOULDERS if name in seen]
    hips = [seen[name] for name in HIPS if name in seen]
    if shoulders and hips:
        (sx, sy), (hx, hy) = _middle(shoulders), _middle(hips)
        return math.degrees(math.atan2(abs(hx - sx), abs(hy - sy)))
    if len(shoulders) == 2:  # the torso is square to the shoulders' line
        (lx, ly), (rx, ry) = shoulders
        return math.degrees(math.atan2(abs(ly - ry), abs(lx - rx)))
    return None


def head_depth(seen: dict[str, Point], box: Box) -> float | None:
    """How far down its box the head is (0 the top, 1 the bottom), or None when no point of the head is seen."""
    head = [seen[name] for name in HEAD if name in seen]
    height = box[3] - box[1]
    if not head or height <= 0:
        return None
    return (_middle(head)[1] - box[1]) / height


def is_down(person: Posed, params: PersonDownParams) -> bool:
    """Whether this pose is a person down: the torso near horizontal, or the head low in the box."""
    seen = {point["name"]: (point["x"], point["y"]) for point in person.keypoints
            if point["score"] >= params.min_keypoint_score}
    angle = torso_angle(seen)
    depth = head_depth(seen, person.box)
    return (angle is not None and angle > params.angle) or (depth is not None and depth > params.low_in_box)


def _middle(points: list[Point]) -> Point:
    return sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points)


class PersonDownMonitor:
    """Each track's current episode down: since when, and whether it fired."""

    def __init__(self, params: PersonDownParams) -> None:
        self.params = params
        self._down_since: dict[int, float] = {}
        self._fired: set[int] = set()

    def update(self, persons: Sequence[Posed], now: float) -> list[int]:
        """The tracks among `persons` whose episode reached `down_s` at `now` (each once per episode)."""
        fired = []
        for person in persons:
            if not is_down(person, self.params):
                self._down_since.pop(person.track_id, None)
                self._fired.discard(person.track_id)
                continue
            since = self._down_since.setdefault(person.track_id, now)
            if now - since >= self.params.down_s and person.track_id not in self._fired:
                self._fired.add(person.track_id)
                fired.append(person.track_id)
        return fired

    def retain(self, alive: Collection[int]) -> None:
        """Forget the tracks that ended."""
        for track_id in [t for t in self._down_since if t not in alive]:
            del self._down_since[track_id]
        self._fired &= set(alive)
