"""Zone presence with inertia, and loitering: which zones each tracked object is in, and how many are in each.

Fed the objects seen in each frame (`Sighting`), as supervision's PolygonZone is fed tracked detections. An
object counts as entered (or left) a zone once its point has been inside (or outside) `inertia` frames in a row,
and as loitering once it has been in it `loitering_s`; a zone with labels follows only those. Changes are named as
the object events list them: `entered:<zone>`, `left:<zone>`, `loitering:<zone>`. Tentative objects are followed
too, so one confirmed inside a zone names it at once; only confirmed ones are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.scene.zones import Sighting, Zone


@dataclass
class _Presence:
    """One object's zones: those it is in (in the camera's zone order), the frames in a row it has been on the
    other side of each zone's edge, when it entered each, and those it loiters in."""

    confirmed: bool = False
    zones: list[str] = field(default_factory=list)
    streaks: dict[str, int] = field(default_factory=dict)
    entered_at: dict[str, float] = field(default_factory=dict)
    loitering: set[str] = field(default_factory=set)

    def keep_only(self, names: set[str]) -> None:
        self.zones = [name for name in self.zones if name in names]
        self.streaks = {name: n for name, n in self.streaks.items() if name in names}
        self.entered_at = {name: t for name, t in self.entered_at.items() if name in names}
        self.loitering &= names


class ZoneMonitor:
    def __init__(self, zones: tuple[Zone, ...] = ()) -> None:
        self.zones = zones
        self._objects: dict[int, _Presence] = {}

    def relayout(self, zones: tuple[Zone, ...]) -> None:
        """Zones reloaded, or laid on frames of another size: objects forget the zones that are gone."""
        self.zones = zones
        names = {zone.name for zone in zones}
        for presence in self._objects.values():
            presence.keep_only(names)

    def update(self, sightings: list[Sighting], now: float) -> dict[int, list[str]]:
        """Follow every object seen in this frame (`now`: seconds); what changed, by track id."""
        changes: dict[int, list[str]] = {}
        points = np.array([sighting.point for sighting in sightings], dtype=np.float64).reshape(-1, 2)
        inside = [zone.inside(points) for zone in self.zones]  # (zones, sightings), in one step per zone
        for i, sighting in enumerate(sightings):
            presence = self._objects.setdefault(sighting.track_id, _Presence())
            presence.confirmed = sighting.confirmed
            if changed := self._follow(presence, sighting, [bool(row[i]) for row in inside], now):
                changes[sighting.track_id] = changed
        return changes

    def zones_of(self, track_id: int) -> tuple[str, ...]:
        """The zones the object is in now."""
        presence = self._objects.get(track_id)
        return tuple(presence.zones) if presence is not None else ()

    def counts(self) -> dict[str, int]:
        """Confirmed objects in each zone now."""
        counts = {zone.name: 0 for zone in self.zones}
        for presence in self._objects.values():
            if presence.confirmed:
                for name in presence.zones:
                    counts[name] += 1
        return counts

    def retain(self, track_ids: set[int]) -> None:
        """Forget the objects that are no longer tracked."""
        self._objects = {track_id: p for track_id, p in self._objects.items() if track_id in track_ids}

    def _follow(self, presence: _Presence, sighting: Sighting, inside: list[bool], now: float) -> list[str]:
        """`inside`: whether the object's point is in each zone's polygon."""
        changes = []
        for zone, in_polygon in zip(self.zones, inside, strict=True):
            inside_now = in_polygon and zone.applies_to(sighting.label)
            if inside_now == (zone.name in presence.zones):
                presence.streaks.pop(zone.name, None)
            else:
                presence.streaks[zone.name] = streak = presence.streaks.get(zone.name, 0) + 1
                if streak >= zone.inertia:
                    del presence.streaks[zone.name]
                    changes.append(self._enter(presence, zone, now) if inside_now else self._leave(presence, zone))
            if (zone.loitering_s and zone.name in presence.zones and zone.name not in presence.loitering
                    and now - presence.entered_at[zone.name] >= zone.loitering_s):
                presence.loitering.add(zone.name)
                changes.append(f"loitering:{zone.name}")
        return changes

    def _enter(self, presence: _Presence, zone: Zone, now: float) -> str:
        presence.zones = [z.name for z in self.zones if z.name in presence.zones or z is zone]
        presence.entered_at[zone.name] = now
        return f"entered:{zone.name}"

    @staticmethod
    def _leave(presence: _Presence, zone: Zone) -> str:
        presence.zones.remove(zone.name)
        presence.entered_at.pop(zone.name, None)
        presence.loitering.discard(zone.name)
        return f"left:{zone.name}"
