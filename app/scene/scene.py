"""A camera's scene, frame by frame: the tracker's identities and the zone and line monitors' state, as one list of
tracked detections and one list of object events.

The tracker (app/scene/tracker.py) keeps identities and says new, label, stationary, moving and end; the monitors
(app/scene/zone_monitor.py, app/scene/line_monitor.py), fed the objects seen in each frame, say entered, left,
loitering and crossed. Here their changes become the frame's events: one `update` per confirmed object that
changed, listing the tracker's changes, then the zones', then the lines'; a `new` naming the zones the object is in
(a crossing it made while tentative follows as an update); an `end` naming the zones it was in (a crossing it had
begun goes before it as an update). Zones and lines exist once laid out on a frame size (`relayout`); until then
the tracker's own output passes through. Poses come later in the lane than the tracker (the crop stage runs on
tracked detections): with `watch_poses`, `pose_events` feeds the person_down monitor (app/scene/person_down.py) the
frame's tracked detections once their keypoints are on, and gives its `person_down` events.
"""

from __future__ import annotations

from dataclasses import replace

from app.frame import Detection
from app.config.pipeline import PersonDownParams
from app.scene.line_monitor import LineMonitor
from app.scene.person_down import KEYPOINTS, PERSON_DOWN, PersonDownMonitor, Posed
from app.scene.tracker import END, NEW, UPDATE, ObjectEvent, Tracker, object_event
from app.scene.zone_monitor import ZoneMonitor
from app.scene.zones import SceneLayout, Sighting, reference_point


class Scene:
    def __init__(self, tracker: Tracker, layout: SceneLayout | None = None) -> None:
        self.tracker = tracker
        self.layout: SceneLayout | None = None
        self.zones = ZoneMonitor()
        self.lines = LineMonitor()
        self.person_down: PersonDownMonitor | None = None
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

    def watch_poses(self, params: PersonDownParams | None) -> None:
        """Watch the tracked persons' poses for person_down with `params` (None: stop); new parameters keep the
        episodes under way."""
        if params is None or self.person_down is None:
            self.person_down = None if params is None else PersonDownMonitor(params)
        else:
            self.person_down.params = params

    def pose_events(self, detections: list[Detection], now: float, seq: int = 0) -> list[ObjectEvent]:
        """This frame's `person_down` events, from its tracked detections with their keypoints (`now`: seconds);
        the episodes of tracks that ended are forgotten."""
        if self.person_down is None:
            return []
        persons = [Posed(d.track_id, d.box, d.attributes[KEYPOINTS]) for d in detections
                   if d.track_id is not None and KEYPOINTS in d.attributes]
        tracks = {track.id: track for track in self.tracker.tracks}
        self.person_down.retain(tracks)
        return [replace(object_event(PERSON_DOWN, tracks[track_id], seq), zones=self.zones.zones_of(track_id))
                for track_id in self.person_down.update(persons, now) if track_id in tracks]

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
