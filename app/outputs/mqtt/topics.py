"""The names one instance (camera + pipeline) uses on the broker: its topics, its client id, and a message.

Pure: nothing here talks to a broker. **One identity per running instance**, so `smartcam` and `smartcam@face`
reading one config share a broker: the client id (`smartcam-<host>-<camera>-<pipeline>` unless `mqtt.client_id`),
every topic below `{prefix}/{camera}/{pipeline}/` (the last will included), and the Home Assistant device and
unique ids (`{node}` = `<prefix>_<camera>_<pipeline>`).

Topics (prefix: mqtt.topic_prefix; discovery: mqtt.discovery.prefix; camera, pipeline and labels made safe by
`app.names.safe_name`):
  {prefix}/{camera}/{pipeline}/availability   online | offline, retained (offline is also the last will)
  {prefix}/{camera}/{pipeline}/source         online | offline: the camera delivers frames, or is down; retained
  {prefix}/{camera}/{pipeline}/client         the client id publishing the instance, retained (two boards, one name)
  {prefix}/{camera}/{pipeline}/events         {"type", "label", "count", "previous", "camera", "pipeline", "result"}
  {prefix}/{camera}/{pipeline}/count/{label}  the label's current count, e.g. "2", retained
  {prefix}/{camera}/{pipeline}/area/{label}   segmentation: the class's share of the frame in percent, e.g. "68.6",
                                              retained
  {prefix}/{camera}/{pipeline}/name/{name}    objects in view carrying a taught name (app/teach), e.g. "1", retained
  {prefix}/{camera}/{pipeline}/snapshot       JPEG of the latest appeared/changed event, retained
  {prefix}/{camera}/{pipeline}/objects        tracked objects' events: {"type": new|update|end|person_down, ...}
  {prefix}/{camera}/{pipeline}/zones/{zone}/count      confirmed objects in the zone now, retained
  {prefix}/{camera}/{pipeline}/lines/{line}/in|out     crossings since the start, retained
  {prefix}/{camera}/{pipeline}/results        every processed frame's result (mqtt.publish_results)
  {prefix}/{camera}/{pipeline}/stats          the run's stats document, every mqtt.stats_interval_s
  {discovery}/device/{node}/config            Home Assistant device discovery, retained (mode device)
  {discovery}/{platform}/{node}/{object_id}/config    Home Assistant discovery per entity, retained (mode entity)
  homeassistant/status, {discovery}/status    subscribed: Home Assistant's birth message
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass

from app.names import safe_name

#: the longest default client id (brokers must take 23; mosquitto and the others take far more)
MAX_CLIENT_ID = 64
#: the availability topic's payloads
ONLINE, OFFLINE = "online", "offline"
#: where Home Assistant announces itself by default (its birth message, `online`), whatever its discovery prefix
HOME_ASSISTANT_STATUS = "homeassistant/status"


@dataclass(frozen=True)
class Message:
    """One message for the broker."""

    topic: str
    payload: str | bytes
    retain: bool = False


def default_client_id(camera: str, pipeline: str, host: str | None = None) -> str:
    """`smartcam-<host>-<camera>-<pipeline>`, topic-safe; one too long keeps its start and a hash of the whole."""
    host = (host if host is not None else socket.gethostname()).split(".")[0]
    client_id = "-".join(("smartcam", safe_name(host), safe_name(camera), safe_name(pipeline)))
    if len(client_id) > MAX_CLIENT_ID:
        digest = hashlib.sha256(client_id.encode()).hexdigest()[:8]
        client_id = f"{client_id[:MAX_CLIENT_ID - len(digest) - 1]}-{digest}"
    return client_id


@dataclass(frozen=True)
class Topics:
    """Every topic one instance (camera + pipeline) uses, in one place; camera and pipeline already safe."""

    prefix: str
    camera: str
    discovery_prefix: str
    pipeline: str

    @property
    def base(self) -> str:
        """The instance's own subtree: nothing outside it is published by this instance but discovery."""
        return f"{self.prefix}/{self.camera}/{self.pipeline}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def source(self) -> str:
        """Whether the instance's camera delivers frames (`online`) or is down (`offline`)."""
        return f"{self.base}/source"

    @property
    def client(self) -> str:
        """Who publishes the instance: its client id, so that another board publishing the same topics is seen."""
        return f"{self.base}/client"

    @property
    def stats(self) -> str:
        return f"{self.base}/stats"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def snapshot(self) -> str:
        return f"{self.base}/snapshot"

    @property
    def results(self) -> str:
        return f"{self.base}/results"

    def count(self, label: str) -> str:
        return f"{self.base}/count/{safe_name(label)}"

    def area(self, label: str) -> str:
        """A segmentation class's area, in percent of the frame."""
        return f"{self.base}/area/{safe_name(label)}"

    def name(self, name: str) -> str:
        """How many objects in view carry a taught name."""
        return f"{self.base}/name/{safe_name(name)}"

    @property
    def objects(self) -> str:
        return f"{self.base}/objects"

    def zone_count(self, zone: str) -> str:
        return f"{self.base}/zones/{safe_name(zone)}/count"

    def line_count(self, line: str, direction: str) -> str:
        return f"{self.base}/lines/{safe_name(line)}/{direction}"

    @property
    def node(self) -> str:
        """The Home Assistant node and device id: unique per instance, and per topic prefix."""
        return f"{safe_name(self.prefix)}_{self.camera}_{self.pipeline}"

    @property
    def birth(self) -> tuple[str, ...]:
        """Where Home Assistant's birth message may come: its default topic, and `{discovery}/status` when the
        discovery prefix is another (whoever changed one usually changed both)."""
        own = f"{self.discovery_prefix}/status"
        return (HOME_ASSISTANT_STATUS,) if own == HOME_ASSISTANT_STATUS else (HOME_ASSISTANT_STATUS, own)

    @property
    def device_discovery(self) -> str:
        """The instance's device discovery topic (every entity in one document)."""
        return f"{self.discovery_prefix}/device/{self.node}/config"

    def discovery(self, platform: str, object_id: str) -> str:
        """One entity's own discovery topic (per-entity discovery)."""
        return f"{self.discovery_prefix}/{platform}/{self.node}/{object_id}/config"

    def discovery_filters(self) -> tuple[str, str, str]:
        """The subscriptions that find retained discovery to check: the instance's device document and its
        per-entity documents, and the camera's from before the per-instance layout (node `smartcam_{camera}`,
        availability `{prefix}/availability`)."""
        return (self.device_discovery, f"{self.discovery_prefix}/+/{self.node}/+/config",
                f"{self.discovery_prefix}/+/{self.legacy_node}/+/config")

    def entity_discovery(self, topic: str) -> tuple[str, str, str] | None:
        """(platform, node, object id) of a per-entity discovery topic, or None when `topic` is not one."""
        if not topic.startswith(f"{self.discovery_prefix}/"):
            return None
        levels = topic[len(self.discovery_prefix) + 1:].split("/")
        return (levels[0], levels[1], levels[2]) if len(levels) == 4 and levels[3] == "config" else None

    def is_discovery(self, topic: str) -> bool:
        return topic == self.device_discovery or self.entity_discovery(topic) is not None

    @property
    def legacy_availability(self) -> str:
        """The availability topic every instance shared before the per-instance layout."""
        return f"{self.prefix}/availability"

    @property
    def legacy_node(self) -> str:
        """The camera's Home Assistant node before the per-instance layout."""
        return f"smartcam_{self.camera}"
