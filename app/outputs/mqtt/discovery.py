"""Home Assistant MQTT discovery, as pure functions from what a run publishes to the messages that say it.

Nothing here holds state or talks to a broker: the publisher keeps the state and sends what these return, so the
whole of discovery is tested as data.

**The entities** (Home Assistant's MQTT docs, "Device discovery payload"). `discovery_components()` is the one list
of the instance's entities, by object id: the snapshot image, per watched label a count sensor and an occupancy
binary sensor, what the track stage adds (`TrackEntities`: the object event entity, whose `OBJECT_EVENT_TYPES`
include the pose monitor's `person_down`), per segmentation class shown an area sensor (`%`, `areas.py`), and per
name taught in the run's gallery (app/teach) a count sensor of the objects in view carrying it; a new kind of
entity is one more entry there. With
`mqtt.discovery.mode: device` (the default; Home Assistant 2024.11 and later) they go out as one retained document,
`device`, `origin`, the availability and `components`; with `entity` (older releases) as one retained
document per entity (`discovery_messages()`). Entity names leave the device name out (Home Assistant puts it in
front: "smartcam cam0 detect" + "Bengal count"). Home Assistant's birth message has the discovery and the state
sent again after a random delay of up to `BIRTH_DELAY_MAX_S` (`birth_delay()`), so a house full of devices does not
answer at once.

**Availability** (`availability()`): an entity is available while both the instance is (`{base}/availability`,
online until it stops or its last will says offline) and its camera delivers frames (`{base}/source`),
`availability_mode: all`. A camera that is down shows its counts, occupancy and snapshot as unavailable, not as an
empty room. The occupancy template reads an empty or odd count as 0 (`int(0)`), never as an error.

**Retained discovery of the past** (`clean_up()`). At each connect the publisher reads back the discovery the broker
retains for the instance and, before its own documents, sends what `clean_up()` returns for each:
- a component the retained device document lists and this run does not publish (a label no longer watched) is
  sent once as `{"platform": ...}` inside the device document, Home Assistant's removal of one component, and the
  device document without it follows; the count it showed is emptied only `later`, once Home Assistant has had
  `REMOVAL_GRACE_S` to unload the entity (it does so asynchronously: a count emptied right after the removal on the
  wire still reaches the entity's template);
- a retained per-entity document is emptied (its count `later`) unless this run publishes it; in device mode one this
  run publishes as a component is first handed over with `{"migrate_discovery": true}`, so the entity keeps its
  settings and history (Home Assistant's "Migration from single component to device-based discovery"); in entity
  mode the retained device document is handed back the same way, then emptied;
- with discovery off, everything retained is emptied; so is the discovery that versions before the per-instance
  layout retained for the camera.
With every label watched (no `publish.labels`) the entities of labels seen before are kept (in device mode taken
into the device document): any of them may come back. So are the area sensors of watched labels: they are announced
with the first segmented frame, which comes after this check.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from app import __version__
from app.names import safe_name
from app.outputs.mqtt.topics import Message, Topics
from app.scene.tracker import END, NEW, UPDATE

#: the discovery and state go out again this long after Home Assistant's birth, at random from 0 (Home Assistant's
#: advice: a random delay, so that many devices do not all answer at once)
BIRTH_DELAY_MAX_S = 5.0
#: Home Assistant's hand-over between per-entity and device discovery: unloads the entity, keeping its settings
MIGRATE_DISCOVERY = '{"migrate_discovery":true}'
#: how long after an entity's removal the count it showed is emptied: Home Assistant unloads a removed entity
#: asynchronously, and an empty count reaching it before then is rendered by its template
REMOVAL_GRACE_S = 5.0
#: the occupancy of a label from its count; an empty or odd payload reads as 0, never a template error
OCCUPANCY_TEMPLATE = "{{ 'ON' if value | int(0) > 0 else 'OFF' }}"
#: the application behind the discovery, as Home Assistant logs it
ORIGIN = {"name": "smartcam", "sw_version": __version__}
#: the object events Home Assistant's event entity accepts: the tracker's, and the pose monitor's lying person
OBJECT_EVENT_TYPES = [NEW, UPDATE, END, "person_down"]
#: the object event as Home Assistant's MQTT event entity reads it: `event_type` and attributes (`clip_url`: where
#: the object's clip is served, None when it is in none; `name`: the track's taught name, None without one)
OBJECT_EVENT_TEMPLATE = ("{{ {'event_type': value_json.type, 'track_id': value_json.track_id, "
                         "'label': value_json.label, 'zones': value_json.zones, "
                         "'changes': value_json.changes | default([]), "
                         "'clip_url': value_json.clip_url | default(none), "
                         "'name': value_json.name | default(none)} "
                         "| to_json }}")


def birth_delay() -> float:
    """How long to wait after Home Assistant's birth before sending discovery and state: at random, up to
    BIRTH_DELAY_MAX_S."""
    return random.uniform(0.0, BIRTH_DELAY_MAX_S)


def device_name(camera: str, pipeline: str) -> str:
    """`smartcam {camera} {pipeline}`, each word once (a pipeline named like its camera is not said twice). Home
    Assistant puts it before each entity's name: "smartcam cam0 detect Bengal count"."""
    words: list[str] = []
    for word in ("smartcam", camera, pipeline):
        if word.casefold() not in (w.casefold() for w in words):
            words.append(word)
    return " ".join(words)


@dataclass(frozen=True)
class TrackEntities:
    """What the track stage adds to Home Assistant: the object event entity, and the zones' and lines' sensors."""

    tracking: bool = False
    zones: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()


def discovery_components(topics: Topics, labels: Iterable[str], track: TrackEntities = TrackEntities(),
                         areas: Iterable[str] = (), names: Iterable[str] = ()) -> dict[str, dict]:
    """Every Home Assistant entity of the instance, by object id, as a device discovery component: its `platform`,
    `unique_id`, `name` (without the device's name: Home Assistant adds it) and the rest of its config. The snapshot
    image; per label (sorted) a count sensor and an occupancy binary sensor; with tracking, an event entity for
    the object events, a count sensor per zone and an in and an out counter per line; per segmentation class of
    `areas` an area sensor in percent; per taught name of `names` a count sensor. The one place to add an entity:
    both discovery modes are made from this."""
    node = topics.node
    components: dict[str, dict] = {"snapshot": {
        "platform": "image", "name": "snapshot", "unique_id": f"{node}_snapshot",
        "image_topic": topics.snapshot, "content_type": "image/jpeg"}}
    if track.tracking:
        components["objects"] = {
            "platform": "event", "name": "object", "unique_id": f"{node}_objects", "state_topic": topics.objects,
            "event_types": OBJECT_EVENT_TYPES, "value_template": OBJECT_EVENT_TEMPLATE}
    for zone in track.zones:
        components[f"zone_{safe_name(zone)}_count"] = {
            "platform": "sensor", "name": f"{zone} zone count", "unique_id": f"{node}_zone_{safe_name(zone)}_count",
            "state_topic": topics.zone_count(zone), "state_class": "measurement"}
    for line in track.lines:
        for direction in ("in", "out"):
            components[f"line_{safe_name(line)}_{direction}"] = {
                "platform": "sensor", "name": f"{line} {direction}",
                "unique_id": f"{node}_line_{safe_name(line)}_{direction}",
                "state_topic": topics.line_count(line, direction), "state_class": "total_increasing"}
    for label in sorted(labels):
        object_id = safe_name(label)
        components[f"{object_id}_count"] = {
            "platform": "sensor", "name": f"{label} count", "unique_id": f"{node}_{object_id}_count",
            "state_topic": topics.count(label), "state_class": "measurement"}
        components[f"{object_id}_occupancy"] = {
            "platform": "binary_sensor", "name": f"{label} occupancy", "unique_id": f"{node}_{object_id}_occupancy",
            "state_topic": topics.count(label), "device_class": "occupancy",
            "value_template": OCCUPANCY_TEMPLATE}
    for label in sorted(areas):
        object_id = safe_name(label)
        components[f"{object_id}_area"] = {
            "platform": "sensor", "name": f"{label} area", "unique_id": f"{node}_{object_id}_area",
            "state_topic": topics.area(label), "unit_of_measurement": "%", "state_class": "measurement",
            "suggested_display_precision": 1}
    for name in sorted(names):
        components[f"name_{safe_name(name)}_count"] = {
            "platform": "sensor", "name": f"{name} count", "unique_id": f"{node}_name_{safe_name(name)}_count",
            "state_topic": topics.name(name), "state_class": "measurement"}
    return components


def device_info(topics: Topics, camera: str) -> dict:
    """The Home Assistant device: one per instance (camera + pipeline)."""
    return {"identifiers": [topics.node], "name": device_name(camera, topics.pipeline), "model": "smartcam",
            "sw_version": __version__}


def availability(topics: Topics) -> dict:
    """Every entity's availability: the instance online and its camera delivering frames (see the module)."""
    return {"availability": [{"topic": topics.availability}, {"topic": topics.source}], "availability_mode": "all"}


def device_document(topics: Topics, camera: str, components: dict[str, dict]) -> dict:
    """The device discovery document (for `topics.device_discovery`): device, origin, the shared availability, and
    the components."""
    return {"device": device_info(topics, camera), "origin": ORIGIN, **availability(topics), "components": components}


def entity_documents(topics: Topics, camera: str, components: dict[str, dict]) -> dict[str, dict]:
    """The same components as per-entity discovery documents, by topic (Home Assistant before 2024.11)."""
    common = {**availability(topics), "device": device_info(topics, camera), "origin": ORIGIN}
    return {topics.discovery(component["platform"], object_id):
            {**{key: value for key, value in component.items() if key != "platform"}, **common}
            for object_id, component in components.items()}


def discovery_messages(topics: Topics, camera: str, components: dict[str, dict], device_mode: bool) -> list[Message]:
    """The retained discovery of `components`: one device document, or one document per entity."""
    if device_mode:
        return [Message(topics.device_discovery, as_json(device_document(topics, camera, components)), retain=True)]
    return [Message(topic, as_json(document), retain=True)
            for topic, document in entity_documents(topics, camera, components).items()]


def as_component(document: dict, platform: str) -> dict:
    """A per-entity discovery document as a device component (its device, origin and availability are the
    device document's)."""
    shared = ("device", "origin", "availability_topic", "availability", "availability_mode")
    return {"platform": platform, **{key: value for key, value in document.items() if key not in shared}}


def as_json(document: dict) -> str:
    return json.dumps(document, separators=(",", ":"))


@dataclass(frozen=True)
class Published:
    """What a run publishes, as far as the clean-up of retained discovery must know it."""

    topics: Topics
    #: mqtt.discovery.enabled, and mode `device` (else `entity`)
    enabled: bool
    device_mode: bool
    #: no publish.labels: the entities of labels seen before are kept, any may come back
    every_label: bool
    #: the discovery components the run publishes now, by object id (kept ones included)
    components: Mapping[str, dict]
    #: the topics the run holds a retained value for now (its counts, its discovery documents, ...)
    retained: frozenset[str]
    #: the area topics of the watched labels (`Topics.area`): their entities are kept until frames announce them
    watched_areas: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CleanUp:
    """What to do about one retained discovery document found on the broker."""

    #: sent once, in this order, before the run's own discovery
    messages: tuple[Message, ...] = ()
    #: sent REMOVAL_GRACE_S after `messages` and the run's discovery: the emptied counts of removed entities
    later: tuple[Message, ...] = ()
    #: components of labels an all-labels run saw before, to publish as they were (by object id)
    kept: Mapping[str, dict] = field(default_factory=dict)
    #: the run's own discovery must go (again) after `messages`: Home Assistant reads the order
    discovery_after: bool = False
    #: what to log, one line each
    lines: tuple[str, ...] = ()


def clean_up(published: Published, topic: str, document: dict) -> CleanUp:
    """What a retained discovery `document` at `topic` calls for: see the module's "Retained discovery"."""
    topics = published.topics
    if topic == topics.device_discovery:
        return _retained_device(published, document)
    parts = topics.entity_discovery(topic)
    if parts is None:
        return CleanUp()
    platform, node, object_id = parts
    if node == topics.node:
        return _retained_entity(published, topic, platform, object_id, document)
    if node == topics.legacy_node and document.get("availability_topic") == topics.legacy_availability:
        return _emptied(published, topic, document)
    return CleanUp()  # another instance's, or a stranger's


def _retained_device(published: Published, document: dict) -> CleanUp:
    """The instance's device document: components it lists and the run does not publish are removed (Home
    Assistant's way: once as `{"platform": ...}`), or kept when they are labels of an all-labels run. In entity
    mode the whole document is handed back to per-entity discovery; with discovery off it is emptied."""
    topic = published.topics.device_discovery
    listed = document.get("components")
    theirs = {o: c for o, c in listed.items() if isinstance(c, dict)} if isinstance(listed, dict) else {}
    if not published.enabled:
        return _emptied(published, topic, *theirs.values())
    gone = {o: c for o, c in theirs.items() if o not in published.components and not set(c) <= {"platform"}}
    kept = {o: c for o, c in gone.items() if keeps(published, c)}
    removed = [o for o in gone if o not in kept]
    messages: list[Message] = []
    lines: list[str] = []
    counts: list[Message] = []
    if removed:
        marked = {o: {"platform": c.get("platform")} if o in removed else c for o, c in theirs.items()}
        counts = _emptied_counts(published, *(gone[o] for o in removed))
        messages.append(Message(topic, as_json({**document, "components": marked}), retain=True))
        lines.append(f"removing {', '.join(removed)} from {topic}{''.join(f' and {m.topic}' for m in counts)}, "
                     "no longer published")
    if not published.device_mode:
        # Home Assistant's rollback: unload the device's entities keeping their settings, empty the document,
        # then the per-entity documents take the entities over
        messages += [Message(topic, MIGRATE_DISCOVERY), Message(topic, "", retain=True)]
        lines.append(f"handing {topic} over to per-entity discovery (mqtt.discovery.mode: entity)")
    return CleanUp(tuple(messages), tuple(counts), kept, bool(messages), tuple(lines))


def _retained_entity(published: Published, topic: str, platform: str, object_id: str, document: dict) -> CleanUp:
    """One of the instance's per-entity documents: kept while published; in device mode one the run publishes as a
    component is handed over to the device document (Home Assistant's migration), so the entity keeps its
    settings; any other is emptied, with its count, unless it is a label of an all-labels run."""
    if topic in published.retained:
        return CleanUp()  # published by this run
    if published.enabled and published.device_mode:
        kept = {object_id: as_component(document, platform)} \
            if object_id not in published.components and keeps(published, document) else {}
        if {**published.components, **kept}.get(object_id, {}).get("platform") == platform:
            return CleanUp((Message(topic, MIGRATE_DISCOVERY), Message(topic, "", retain=True)), (), kept, True,
                           (f"moving {topic} into the device discovery {published.topics.device_discovery}",))
    elif published.enabled and keeps(published, document):
        return CleanUp()  # every label watched: one seen before may come back
    return _emptied(published, topic, document)


def keeps(published: Published, document: dict) -> bool:
    """With every label watched (no publish.labels), an entity showing a label's count or area is kept; so is the
    area of a watched label."""
    state_topic = document.get("state_topic")
    if not isinstance(state_topic, str):
        return False
    base = published.topics.base
    return published.every_label and state_topic.startswith((f"{base}/count/", f"{base}/area/")) \
        or state_topic in published.watched_areas


def _emptied(published: Published, topic: str, *documents: dict) -> CleanUp:
    """Empty a retained topic, and `later` the counts its documents showed that are no longer published."""
    counts = _emptied_counts(published, *documents)
    line = f"removing retained {' and '.join([topic, *(m.topic for m in counts)])}, no longer published"
    return CleanUp((Message(topic, "", retain=True),), tuple(counts), lines=(line,))


def _emptied_counts(published: Published, *documents: dict) -> list[Message]:
    """The camera's count topics `documents` showed that the run does not publish, emptied (each once)."""
    topics = published.topics
    emptied: list[str] = []
    for document in documents:
        state_topic = document.get("state_topic")
        if isinstance(state_topic, str) and state_topic not in published.retained and state_topic not in emptied \
                and state_topic.startswith(f"{topics.prefix}/{topics.camera}/"):
            emptied.append(state_topic)
    return [Message(state_topic, "", retain=True) for state_topic in emptied]
