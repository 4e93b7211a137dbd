"""Lines with hysteresis, on hand-made trajectories: jitter on a line makes at most one crossing, a touch makes none,
a crossing counts after `inertia` frames on the other side or at once past `margin`, a crossing made while the
track is tentative counts once it is confirmed, and one begun when the track ends counts then."""

from __future__ import annotations

from app.config import CameraConfig, TrackParams
from app.frame import Detection
from app.scene.scene import Scene
from app.scene.tracker import END, NEW, UPDATE, ObjectEvent, Tracker
from app.scene.zones import IN, OUT, SceneLayout

SIZE = (640, 360)
#: x of the gate, drawn downwards in the middle of the frame: left to right is in
GATE_X = 320


def gate(min_hits: int = 1, **line) -> Scene:
    camera = CameraConfig.model_validate({"lines": {"gate": {"from": [0.5, 0], "to": [0.5, 0.9], **line}}})
    return Scene(Tracker(TrackParams(min_hits=min_hits)), SceneLayout.build(camera.zones, camera.lines, SIZE))


class Cat:
    """One cat walked through a scene, a frame at a time 0.1 s apart: its point (the bottom centre of its box) at
    x, y 180."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.frame = 0

    def walk(self, xs: list[float] | range) -> list[ObjectEvent]:
        """Every event of the frames at `xs`."""
        events = []
        for x in xs:
            self.frame += 1
            events += self.scene.update([Detection("cat", 0, 0.8, (x - 40, 100, x + 40, 180))], self.frame * 0.1,
                                        self.frame)[1]
        return events

    def wait(self, frames: int) -> list[ObjectEvent]:
        """Every event of `frames` frames without the cat."""
        events = []
        for _ in range(frames):
            self.frame += 1
            events += self.scene.update([], self.frame * 0.1, self.frame)[1]
        return events


def crossings(events: list[ObjectEvent]) -> list[str]:
    return [change for event in events for change in event.changes if change.startswith("crossed:")]


def test_jitter_on_the_line_makes_at_most_one_crossing():
    jitter = [GATE_X + (2 if i % 2 else -2) for i in range(20)]
    approach, beyond = list(range(200, GATE_X, 20)), list(range(GATE_X + 20, 460, 20))
    for line in ({}, {"inertia": 2}, {"margin": 0.05}):
        on_the_line = gate(**line)
        assert crossings(Cat(on_the_line).walk([*approach, *jitter, *approach[::-1]])) == [], line
        assert on_the_line.lines.counts == {"gate": {IN: 0, OUT: 0}}
        through = gate(**line)
        assert crossings(Cat(through).walk([*approach, *jitter, *beyond])) == ["crossed:gate:in"], line
        assert through.lines.counts == {"gate": {IN: 1, OUT: 0}}


def test_touching_the_line_and_going_back_makes_none():
    """A point on the line is on its far side (zones.py), so a touch is a frame or more over there."""
    for line, frames_on_it in (({}, 2), ({"inertia": 5}, 4), ({"margin": 0.05, "inertia": 3}, 2)):
        touched = gate(**line)
        events = Cat(touched).walk([*range(200, GATE_X, 20), *[GATE_X] * frames_on_it, *range(300, 180, -20)])
        assert crossings(events) == [] and touched.lines.counts == {"gate": {IN: 0, OUT: 0}}, line


def test_a_crossing_counts_after_inertia_frames_or_at_once_past_the_margin():
    slow = Cat(gate(inertia=4))
    slow.walk([300, 310])
    assert [crossings(slow.walk([x])) for x in (330, 335, 340, 345)] == [[], [], [], ["crossed:gate:in"]]
    far = Cat(gate(inertia=100, margin=0.05))  # 18 pixels of the 360 high frame
    far.walk([300, 310])
    assert crossings(far.walk([330])) == [] and crossings(far.walk([340])) == ["crossed:gate:in"]
    assert far.scene.lines.counts == {"gate": {IN: 1, OUT: 0}}


def test_a_crossing_made_before_the_track_is_confirmed_counts_once_it_is():
    early = Cat(gate(min_hits=6, inertia=2))
    events = early.walk([300, 325, 330, 335, 340, 345, 350])  # counted at 330, the track confirmed at 345
    assert [(e.type, e.changes) for e in events] == [(NEW, ()), (UPDATE, ("crossed:gate:in",))]
    assert events[0].seq == events[1].seq == 6
    assert early.scene.lines.counts == {"gate": {IN: 1, OUT: 0}}
    back = early.walk([330, 315, 305, 295])
    assert crossings(back) == ["crossed:gate:out"] and early.scene.lines.counts == {"gate": {IN: 1, OUT: 1}}



def test_a_crossing_begun_when_the_track_ends_counts_then():
    """An object that goes over the line and out of view, or is still there at the run's end, before `inertia`
    frames never came back: its crossing counts, in an update just before its end."""
    stays = Cat(gate(inertia=5))
    stays.walk([280, 300, 310, 330, 340])
    assert [(e.type, e.changes) for e in stays.scene.finish(99)] == [(UPDATE, ("crossed:gate:in",)), (END, ())]
    assert stays.scene.lines.counts == {"gate": {IN: 1, OUT: 0}}
    leaves = Cat(Scene(Tracker(TrackParams(min_hits=1, max_lost=2)), gate(inertia=5).layout))
    leaves.walk([280, 300, 310, 330])
    assert [(e.type, e.changes) for e in leaves.wait(3)] == [(UPDATE, ("crossed:gate:in",)), (END, ())]
    touched = Cat(gate(inertia=5))
    touched.walk([280, 300, 310, 330, 310])  # back on its side before the end: nothing was begun
    assert [(e.type, e.changes) for e in touched.scene.finish(99)] == [(END, ())]
