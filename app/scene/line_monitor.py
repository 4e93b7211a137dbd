"""Line crossings with hysteresis: which tracked objects went across each line, which way, and how many so far.

Fed the objects seen in each frame (`Sighting`, tentative ones too), as supervision's LineZone is fed tracked
detections. Each object has, per line, the side it is counted on. A crossing counts once its point has stayed on
the other side `inertia` frames in a row, or gone `margin` pixels past the line, so a touch, or jitter on the line,
counts nothing. Its direction is that of the step from the object's last point on the counted side to the point
where it counts, and it counts only when that step passes through the segment, not beyond its ends (IN, OUT and
the side a point on the line belongs to are app/scene/zones.py's). A crossing made while the track is tentative is
held, and counts when the track is confirmed. One begun when the track ends (on the other side, fewer than
`inertia` frames) counts then (`settle`): the object never came back.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.scene.zones import IN, OUT, Line, Point, Sighting


@dataclass
class _Side:
    """One object against one line: the side it is counted on, its last point there, and how many frames in a row
    it has been on the other side since, the last of them at `beyond`."""

    positive: bool
    anchor: Point
    streak: int = 0
    beyond: Point | None = None


class LineMonitor:
    def __init__(self, lines: tuple[Line, ...] = ()) -> None:
        self.lines = lines
        #: crossings since the start, per line and direction
        self.counts: dict[str, dict[str, int]] = {line.name: {IN: 0, OUT: 0} for line in lines}
        self._sides: dict[tuple[int, str], _Side] = {}
        #: crossings (line, direction) made by tentative tracks, by track id
        self._held: dict[int, list[tuple[str, str]]] = {}

    def relayout(self, lines: tuple[Line, ...]) -> None:
        """Lines reloaded, or laid on frames of another size: the counts of the lines that remain are kept; where
        each object stands is learnt again (its points were in the old frame's pixels)."""
        self.lines = lines
        self.counts = {line.name: self.counts.get(line.name, {IN: 0, OUT: 0}) for line in lines}
        self._sides.clear()
        names = set(self.counts)
        self._held = {track_id: [made for made in held if made[0] in names] for track_id, held in self._held.items()}

    def update(self, sightings: list[Sighting]) -> dict[int, list[str]]:
        """Follow every object seen in this frame; the crossings counted now, `crossed:<line>:<direction>`, by
        track id."""
        crossed: dict[int, list[str]] = {}
        for sighting in sightings:
            made = [(line.name, direction) for line in self.lines if line.applies_to(sighting.label)
                    if (direction := self._follow(line, sighting)) is not None]
            if not sighting.confirmed:
                self._held.setdefault(sighting.track_id, []).extend(made)
                continue
            made = self._held.pop(sighting.track_id, []) + made
            for name, direction in made:
                self.counts[name][direction] += 1
            if made:
                crossed[sighting.track_id] = [f"crossed:{name}:{direction}" for name, direction in made]
        return crossed

    def settle(self, track_id: int) -> list[str]:
        """The confirmed track `track_id` ends: the crossings it had begun count; as `update` names them."""
        made = [(line.name, direction) for line in self.lines
                if (side := self._sides.get((track_id, line.name))) is not None and side.beyond is not None
                if (direction := line.crossing(side.anchor, side.beyond)) is not None]
        for name, direction in made:
            self.counts[name][direction] += 1
        return [f"crossed:{name}:{direction}" for name, direction in made]

    def retain(self, track_ids: set[int]) -> None:
        """Forget the objects that are no longer tracked."""
        self._sides = {key: side for key, side in self._sides.items() if key[0] in track_ids}
        self._held = {track_id: held for track_id, held in self._held.items() if track_id in track_ids}

    def _follow(self, line: Line, sighting: Sighting) -> str | None:
        """Where the object stands against `line` now; the direction of a crossing that counts in this frame."""
        point = sighting.point
        positive = line.side(point) > 0
        side = self._sides.get((sighting.track_id, line.name))
        if side is None or side.positive == positive:
            self._sides[sighting.track_id, line.name] = _Side(positive, point)
            return None
        side.streak += 1
        side.beyond = point
        if side.streak < line.inertia and not (line.margin and line.distance(point) >= line.margin):
            return None
        self._sides[sighting.track_id, line.name] = _Side(positive, point)
        return line.crossing(side.anchor, point)
