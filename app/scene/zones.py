"""Zones and lines on a camera's picture: where a tracked object is, and when it crosses.

A zone is a named polygon, a line a named segment with a direction (`camera.zones`, `camera.lines` in
config.yaml). A shape whose every coordinate is between 0 and 1 is in fractions of the frame; any other is in
pixels of the frame the results are in (their `size`), or of the capture when that frame is decoded smaller
(`captured_size`). Owns only geometry: which zones a point is in, which side
of a line it is on and how far, and which way a step crosses a line. What counts as entered (inertia), loitering,
a crossing (inertia, margin) and the counts belong to the monitors (app/scene/zone_monitor.py,
app/scene/line_monitor.py). An object's point is the bottom centre of its box, where it stands on the ground, as in
Frigate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.config import CameraConfig, LineConfig, ZoneConfig

Point = tuple[float, float]
IN, OUT = "in", "out"


def reference_point(box: tuple[float, float, float, float]) -> Point:
    """The bottom centre of a box (x0, y0, x1, y1): where the object meets the ground."""
    return (box[0] + box[2]) / 2, box[3]


@dataclass(frozen=True)
class Sighting:
    """A tracked object seen in this frame, as the monitors are fed it: tentative until `confirmed`."""

    track_id: int
    label: str
    point: Point
    confirmed: bool


def in_pixels(points: list[tuple[float, float]], size: tuple[int, int],
              captured: tuple[int, int] | None = None) -> np.ndarray:
    """`points` as pixels of a `size` (width, height) frame: fractions when every coordinate is in 0..1, else
    pixels of the `captured` size (see `captured_size`) scaled to the frame's, or without it of the frame."""
    array = np.asarray(points, dtype=np.float64)
    if np.all((array >= 0) & (array <= 1)):
        return array * np.asarray(size, dtype=np.float64)
    if captured is not None:
        array = array * np.asarray(size, dtype=np.float64) / np.asarray(captured, dtype=np.float64)
    return array


def captured_size(camera: CameraConfig) -> tuple[int, int] | None:
    """The size pixel-valued shapes are written in when the frames may be smaller than captured: a camera sending
    MJPEG (`fourcc: MJPG`) is decoded at 1/camera.decode_scale, which `auto` picks by the outputs turned on, so its
    shapes are in camera.width x height pixels whatever the decode. None: pixels of the frame itself."""
    return (camera.width, camera.height) if camera.fourcc.upper() == "MJPG" else None


@dataclass(frozen=True)
class Zone:
    name: str
    polygon: np.ndarray  # (N, 2) pixels
    labels: frozenset[str]
    inertia: int
    loitering_s: float

    def applies_to(self, label: str) -> bool:
        return not self.labels or label in self.labels

    def contains(self, point: Point) -> bool:
        """Whether `point` is inside the polygon (even-odd rule; a point on an edge may fall either way)."""
        return bool(self.inside(np.asarray([point], dtype=np.float64))[0])

    def inside(self, points: np.ndarray) -> np.ndarray:
        """Which of `points` (N, 2) are inside the polygon, as (N,) booleans: `contains` for every point at once."""
        x, y = points[:, 0:1], points[:, 1:2]
        xs, ys = self.polygon[:, 0], self.polygon[:, 1]
        xs_next, ys_next = np.roll(xs, -1), np.roll(ys, -1)
        straddles = (ys > y) != (ys_next > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at_x = xs + (y - ys) * (xs_next - xs) / (ys_next - ys)
        return np.count_nonzero(straddles & (x < at_x), axis=1) % 2 == 1


@dataclass(frozen=True)
class Line:
    name: str
    start: np.ndarray  # (2,) pixels
    end: np.ndarray
    labels: frozenset[str]
    #: frames in a row on the other side before a crossing counts
    inertia: int = 1
    #: pixels past the line at which a crossing counts at once (0: inertia alone)
    margin: float = 0.0

    def applies_to(self, label: str) -> bool:
        return not self.labels or label in self.labels

    def side(self, point: Point) -> float:
        """Which side of the line `point` is on: positive on the left of start→end as drawn on the image (y down,
        so a line drawn downwards has its positive side on the image's left)."""
        (sx, sy), (ex, ey) = self.start, self.end
        return float((ex - sx) * (point[1] - sy) - (ey - sy) * (point[0] - sx))

    def distance(self, point: Point) -> float:
        """How far `point` is from the line through start and end, in pixels."""
        return abs(self.side(point)) / float(np.hypot(*(self.end - self.start)))

    def crossing(self, before: Point, after: Point) -> str | None:
        """IN when the step before→after crosses the segment from its positive side to its negative side (left to
        right for a line drawn downwards), OUT the other way, None when it does not cross the segment. A point on
        the line counts as on the negative side, so a step onto it and one off it are one crossing, not two or
        none."""
        positive_before, positive_after = self.side(before) > 0, self.side(after) > 0  # on the line: negative
        if positive_before == positive_after:
            return None
        # the segment's ends must lie on either side of the step's own line, or the step passes beyond an end
        step = Line(self.name, np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64), self.labels)
        if (step.side(tuple(self.start)) > 0) == (step.side(tuple(self.end)) > 0):
            return None
        return IN if positive_before else OUT


@dataclass(frozen=True)
class SceneLayout:
    """A camera's zones and lines, in pixels of frames of one size."""

    size: tuple[int, int]
    zones: tuple[Zone, ...]
    lines: tuple[Line, ...]

    @classmethod
    def build(cls, zones: dict[str, ZoneConfig], lines: dict[str, LineConfig], size: tuple[int, int],
              captured: tuple[int, int] | None = None) -> SceneLayout:
        """Laid on frames of `size`; pixel values are of `captured` when given (`captured_size`)."""
        built_lines = []
        for name, line in lines.items():
            start, end = in_pixels([line.start, line.end], size, captured)
            built_lines.append(Line(name, start, end, frozenset(line.labels), line.inertia,
                                    line.margin * min(size)))
        return cls(size, tuple(Zone(name, in_pixels(zone.polygon, size, captured), frozenset(zone.labels),
                                    zone.inertia, zone.loitering_s) for name, zone in zones.items()),
                   tuple(built_lines))
