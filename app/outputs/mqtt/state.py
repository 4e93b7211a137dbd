"""What the broker holds for Home Assistant, as state: the latest payload of each retained topic
(`RetainedState`, with the removals' emptied counts that wait for Home Assistant to unload the entities), and the
entities it is made of (`Entities`): the watched labels, the track stage's zones and lines, the segmentation classes
shown (`areas.py`), the names taught in the run's gallery (each a count from the start, 0 while no object in view
carries it), the components an earlier run left that are kept, their counts and areas, and the discovery made
from them. `Entities` also acts on retained discovery found on the broker (`discovery.clean_up`), at connect or after
a reload changed the entities. Both are used with the publisher's lock held.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections import Counter
from collections.abc import Iterable

from app.config.outputs import DiscoveryConfig
from app.frame import Detection
from app.model.kinds.base import DETECTIONS
from app.model.kinds.segmentation import Segments
from app.outputs.base import PublishContext
import app.outputs.mqtt.discovery as discovery
from app.outputs.mqtt.areas import area_payload, area_states
from app.outputs.mqtt.discovery import (Published, TrackEntities, clean_up, discovery_components,
                                        discovery_messages, keeps)
from app.outputs.mqtt.topics import Message, Topics
from app.teach.run import taught_names


class RetainedState:
    """The latest payload of each retained topic, which of them are still to send (in order), and one-off messages
    (a removal, a hand-over) that go before them. Discovery waits until the retained discovery is checked. Messages
    sent `later` (a removed entity's emptied count) go once they are due and every discovery message has gone, and
    not at all when their topic holds a value again by then (the label came back)."""

    def __init__(self, topics: Topics) -> None:
        self._topics = topics
        self._latest: dict[str, str | bytes] = {}
        self._unsent: dict[str, None] = {}
        self._once: deque[Message] = deque()
        self._later: deque[tuple[float, Message]] = deque()

    def __getitem__(self, topic: str) -> str | bytes:
        return self._latest[topic]

    @property
    def pending(self) -> bool:
        return bool(self._unsent or self._once or self._later)

    @property
    def due(self) -> float | None:
        """When the first message sent `later` is due (monotonic), if one waits."""
        return self._later[0][0] if self._later else None

    def held(self) -> frozenset[str]:
        """The topics holding a value now."""
        return frozenset(topic for topic, payload in self._latest.items() if payload)

    def set(self, topic: str, payload: str | bytes) -> None:
        if self._latest.get(topic) != payload:
            self._latest[topic] = payload
            self._unsent[topic] = None

    def forget(self, topic: str) -> None:
        """No longer hold `topic` (an entity or count a reload removed): it is neither sent again nor published."""
        self._latest.pop(topic, None)
        self._unsent.pop(topic, None)

    def send_once(self, messages: Iterable[Message]) -> None:
        self._once.extend(messages)

    def send_later(self, messages: Iterable[Message]) -> None:
        """Send `messages` REMOVAL_GRACE_S from now, after the discovery."""
        at = time.monotonic() + discovery.REMOVAL_GRACE_S
        self._later.extend((at, message) for message in messages)

    def send_discovery_last(self) -> None:
        """Send the discovery again, after everything waiting now."""
        for topic in [t for t in self._latest if self._topics.is_discovery(t)]:
            self._unsent.pop(topic, None)
            self._unsent[topic] = None

    def send_all(self) -> None:
        """After a (re)connect or Home Assistant's restart: every retained topic again, from the current state."""
        self._unsent = dict.fromkeys(self._latest)

    def next(self, checked: bool, now: float) -> Message | None:
        """The next message to send at `now`: the one-off messages, then the state (discovery only once
        `checked`), then what is due of the messages sent `later`."""
        if checked and self._once:
            return self._once.popleft()
        for topic in self._unsent:
            if checked or not self._topics.is_discovery(topic):
                del self._unsent[topic]
                return Message(topic, self._latest[topic], retain=True)
        while checked and self._later and self._later[0][0] <= now:
            message = self._later.popleft()[1]
            if not self._latest.get(message.topic):
                return message
        return None


def track_entities(ctx: PublishContext) -> TrackEntities:
    """What the run's track stage adds to Home Assistant: its zones and lines, if it tracks."""
    camera, tracking = ctx.settings.device.camera, ctx.settings.pipeline.track is not None
    return TrackEntities(tracking, tuple(camera.zones) if tracking else (), tuple(camera.lines) if tracking else ())


class Entities:
    """The run's Home Assistant entities and their counts and areas, kept in `retained`."""

    def __init__(self, topics: Topics, retained: RetainedState, discovery: DiscoveryConfig,
                 ctx: PublishContext) -> None:
        self.topics, self.retained, self.discovery, self.ctx = topics, retained, discovery, ctx
        self.labels: set[str] = set()
        #: the segmentation classes whose area is published, and the area published (`areas.area_states`)
        self.areas: dict[str, float] = {}
        self.track = track_entities(ctx)
        #: the names taught in the run's gallery, each with its count of objects in view
        self.names = taught_names(ctx.settings)
        #: components of labels seen by an earlier all-labels run, and the areas of watched labels, found retained:
        #: published as they were
        self.kept: dict[str, dict] = {}
        self._start_counts(frozenset())
        self.update_discovery()

    def watch(self, label: str, discovery: bool = True) -> None:
        """A label's count starts at 0 and, with discovery on, it gets its Home Assistant entities."""
        if label not in self.labels:
            self.labels.add(label)
            self.retained.set(self.topics.count(label), "0")
            if discovery:
                self.update_discovery()

    def show_areas(self, segments: Segments) -> None:
        """A segmented frame's class areas: those that moved enough are published, a class shown the first time
        gets its Home Assistant entity."""
        states = area_states(segments, self.ctx.publish.labels, self.areas)
        for label, area in states.items():
            self.retained.set(self.topics.area(label), area_payload(area))
        new = states.keys() - self.areas.keys()
        self.areas.update(states)
        if new:
            self.update_discovery()

    def show_names(self, detections: list[Detection]) -> None:
        """Each taught name's count: the frame's detections carrying it (a tracked one carries its track's name)."""
        carried = Counter(detection.attributes.get("name") for detection in detections)
        for name in self.names:
            self.retained.set(self.topics.name(name), str(carried[name]))

    def reconfigure(self, ctx: PublishContext) -> list[str]:
        """A reload's zones, lines and watched labels: the entities change as a new connection finding the old
        ones retained would change them (those gone are removed, their counts emptied; new ones are announced),
        while the counts that remain go on. What to log."""
        held = self.retained.held()
        announced = {topic: self.retained[topic] for topic in held if self.topics.is_discovery(topic)}
        old_state = self._count_topics() | self._area_topics()
        self.ctx, self.track, self.names = ctx, track_entities(ctx), taught_names(ctx.settings)
        if ctx.publish.labels:  # an all-labels run keeps every label it saw
            self.labels = set()
            self.areas = {label: area for label, area in self.areas.items() if label in ctx.publish.labels}
        published = self._published()
        self.kept = {o: c for o, c in self.kept.items() if keeps(published, c)}
        for topic in [*announced, *(old_state - self._count_topics() - self._area_topics())]:
            self.retained.forget(topic)
        self._start_counts(held)
        self.update_discovery()
        return [line for topic, payload in announced.items() for line in self.clean_up(topic, json.loads(payload))]

    def _start_counts(self, held: frozenset[str]) -> None:
        """The watched labels', zones' and lines' counts start at 0; those `held` already go on. A model that gives
        no detections (a segmentation's `publish.labels` choose its areas) has no label counts."""
        if self.ctx.produces == DETECTIONS:
            self.labels.update(self.ctx.publish.labels or ())
        for topic in self._count_topics() - held:
            self.retained.set(topic, "0")

    def _count_topics(self) -> set[str]:
        topics = self.topics
        return {*(topics.count(label) for label in self.labels),
                *(topics.zone_count(zone) for zone in self.track.zones), *(topics.name(name) for name in self.names),
                *(topics.line_count(line, direction) for line in self.track.lines for direction in ("in", "out"))}

    def _area_topics(self) -> set[str]:
        return {self.topics.area(label) for label in self.areas}

    def components(self) -> dict[str, dict]:
        return {**self.kept, **discovery_components(self.topics, self.labels, self.track, self.areas, self.names)}

    def update_discovery(self) -> None:
        if self.discovery.enabled:
            for message in discovery_messages(self.topics, self.ctx.camera, self.components(),
                                              self.discovery.mode == "device"):
                self.retained.set(message.topic, message.payload)

    def _published(self) -> Published:
        """What the run publishes now, as the clean-up of retained discovery must know it."""
        watched = self.ctx.publish.labels or ()
        return Published(self.topics, self.discovery.enabled, self.discovery.mode == "device", not watched,
                         self.components(), self.retained.held(),
                         frozenset(self.topics.area(label) for label in watched))

    def clean_up(self, topic: str, document: dict) -> list[str]:
        """Act on a retained discovery document found on the broker (`discovery.clean_up`); what to log."""
        found = clean_up(self._published(), topic, document)
        if found.kept:
            self.kept.update(found.kept)
            self.update_discovery()
        self.retained.send_once(found.messages)
        self.retained.send_later(found.later)
        if found.discovery_after:
            self.retained.send_discovery_last()
        return list(found.lines)
