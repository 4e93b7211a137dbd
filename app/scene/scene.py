"""A camera's scene, frame by frame: the tracker's identities and the zone and line monitors' state, as one list of
tracked detections and one list of object events.

The tracker (app/scene/tracker.py) keeps identities and says new, label, stationary, moving and end; the monitors
(app/scene/zone_monitor.py, app/scene/line_monitor.py), fed the objects seen in each frame, say entered, left,
loitering and crossed. Here their changes become the frame's events: one `update` per confirmed object that
changed, listing the tracker's changes, then the zones', then the lines'; a `new` naming the zones the object is in
(a crossing it made while tentative follows as an update); an `end` naming the zones it was in (a crossing it had
begun goes before it as an update). Zones and lines exist once laid out on a frame size (`relayout`); until then
the tracker's own output passes through.
"""

from __future__ import annotations

from dataclasses import replace

from app.frame import Detection
from app.scene.line_monitor import LineMonitor
from app.scene.tracker import END, NEW, UPDATE, ObjectEvent, Tracker, object_event
from app.scene.zone_monitor import ZoneMonitor
from app.scene.zones import SceneLayout, Sighting, reference_point


class Scene:
    def __init__(self, tracker: Tracker, layout: SceneLayout | None = None) -> None:
        self.tracker = tracker
        self.layout: SceneLayout | None = None
        self.zones = ZoneMonitor()
        self.lines = LineMonitor()
        if layout is not None:
            self.relayout(layout)

    def relayout(self, layout: SceneLayout) -> None:
        """Use `layout` from now on (frames of another size, or zones and lines reloaded): the tracks keep their
        ids, the lines that remain their counts, and objects forget the zones that are gone."""
        self.layout = layout
        self.zones.relayout(layout.zones)
        self.lines.relayout(layout.lines)

    def update(self, detections: list[Detection], now: float, seq: int = 0) -> tuple[list[Detection],
                                                                                       list[ObjectEvent]]:
        """This frame's detections with their track ids and zones, and its events (`now`: seconds)."""
        tracked, events = self.tracker.update(detections, now, seq)
        if self.layout is None:
            return tracked, events
        seen = self.tracker.seen
        sightings = [Sighting(track.id, track.label, reference_point(track.as_box()), track.confirmed)
                     for track in seen]
        zone_changes = self.zones.update(sightings, now)
        crossings = self.lines.update(sightings)
        own = {event.track_id: event for event in events if event.type != END}
        merged: list[ObjectEvent] = []
        for track in seen:
            zones = self.zones.zones_of(track.id)
            event = own.get(track.id)
            if event is not None and event.type == NEW:
                merged.append(replace(event, zones=zones))
                changes = crossings.get(track.id, [])
            else:
                changes = [*(event.changes if event else ()), *zone_changes.get(track.id, ()),
                           *crossings.get(track.id, ())]
            if changes and track.confirmed:
                merged.append(replace(object_event(UPDATE, track, seq, changes), zones=zones))
        merged += self._ended([event for event in events if event.type == END])
        self._retain()
        return [self._placed(detection) for detection in tracked], merged

    def finish(self, seq: int = 0) -> list[ObjectEvent]:
        """End every confirmed track now, each naming the zones it was in."""
        events = self._ended(self.tracker.finish(seq))
        self._retain()
        return events

    def _ended(self, ends: list[ObjectEvent]) -> list[ObjectEvent]:
        """The `end` events, naming the zones each object was in, each after an `update` for the crossings it had
        begun and can no longer take back."""
        out = []
        for end in ends:
            zones = self.zones.zones_of(end.track_id)
            if crossed := self.lines.settle(end.track_id):
                out.append(replace(end, type=UPDATE, end=None, zones=zones, changes=tuple(crossed)))
            out.append(replace(end, zones=zones))
        return out

    def _placed(self, detection: Detection) -> Detection:
        """A tracked detection with the zones its object is in."""
        if detection.track_id is None or detection.zones == (zones := self.zones.zones_of(detection.track_id)):
            return detection
        return replace(detection, zones=zones)

    def _retain(self) -> None:
        alive = {track.id for track in self.tracker.tracks}
        self.zones.retain(alive)
        self.lines.retain(alive)
