"""Configuration: load `config.yaml` (the device) and `pipelines/NAME.yaml` (the processing) into typed models.

Owns the schema, `${VAR}` / `${VAR:-default}` substitution, `--set key.path=value` overrides with type coercion,
and error messages of the form `FILE: key.path: what is wrong (the fix)`. Unknown keys are errors, with the
closest valid key suggested, because a misspelt key silently ignored is a camera that does the wrong thing for
months.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from yaml.composer import ComposerError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from app.errors import ConfigError
from app.redact import mask_credentials, url_secrets
from app.yaml_file import load_value, read_mapping

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_DIR / "config.yaml"
PIPELINES_DIR = PROJECT_DIR / "pipelines"


class Strict(BaseModel):
    """Base of every config section: unknown keys are errors. Patterns are checked with Python's `re`: each one
    pydantic's Rust regex engine compiles costs about 2 MB of memory for the life of the process."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, regex_engine="python-re")


class ReconnectConfig(Strict):
    initial_delay_s: float = Field(1.0, gt=0, le=3600, description="first wait before reopening a failed source")
    max_delay_s: float = Field(5.0, gt=0, le=3600,
                               description="longest wait between reopen attempts (doubling backoff)")


#: names that become MQTT topic levels, Home Assistant ids and file names: short, and no separators or wildcards
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$"
NAME_RULE = "1 to 64 letters, digits, spaces, _ . or -, starting with a letter or digit"
#: the largest capture a camera gives (a 64 MP sensor is 9152 x 6944) and the fastest (high-speed modes; the
#: pattern source uses it as "unpaced")
MAX_SIDE = 10_000
MAX_FPS = 1000.0


def _named(value: str, what: str) -> str:
    if not re.fullmatch(NAME_PATTERN, value):
        raise ValueError(f"not a {what}: {NAME_RULE}")
    return value


Coordinates = tuple[float, float]


def _no_negative(points: list[Coordinates]) -> None:
    if any(value < 0 for point in points for value in point):
        raise ValueError("coordinates are fractions of the frame (0 to 1) or pixels, never negative")


class ZoneConfig(Strict):
    """A named area of the picture; a tracked object is in it while the bottom centre of its box is."""

    polygon: list[Coordinates] = Field(min_length=3, description="[[x, y], ...]: fractions of the frame (every "
                                       "value 0 to 1) or pixels")
    labels: list[str] = Field([], description="the labels this zone counts (default: all)")
    inertia: int = Field(3, ge=1, le=1000, description="frames in a row inside (or outside) before an object "
                         "counts as entered (or left)")
    loitering_s: float = Field(0.0, ge=0, le=86400, description="seconds in the zone before an object is "
                               "loitering (an update event); 0: never")

    @field_validator("polygon")
    @classmethod
    def _polygon_has_no_negative(cls, value: list[Coordinates]) -> list[Coordinates]:
        _no_negative(value)
        return value


class LineConfig(Strict):
    """A named line; an object whose point steps across it is counted `in` (from the left of `from` → `to` as
    drawn on the image, so left to right for a line drawn downwards) or `out`."""

    start: Coordinates = Field(alias="from", description="[x, y]: fractions of the frame or pixels")
    end: Coordinates = Field(alias="to", description="[x, y]")
    labels: list[str] = Field([], description="the labels this line counts (default: all)")

    @model_validator(mode="after")
    def _a_line_has_length(self) -> LineConfig:
        _no_negative([self.start, self.end])
        if self.start == self.end:
            raise ValueError("from and to are the same point: a line needs two")
        return self


class MotionConfig(Strict):
    """Motion gating (app/scene/motion.py): infer only while something moves or is tracked, and every keepalive_s."""

    enabled: bool | Literal["auto"] = Field("auto", description="auto: on for cameras and streams (and paced "
                                            "files), off for files and images read as fast as they are processed")
    threshold: int = Field(25, ge=1, le=255, description="grey levels a pixel must change by to count as moving")
    min_area: float = Field(0.002, ge=0, le=1, description="the share of the picture that must move")
    keepalive_s: float = Field(10.0, gt=0, le=86400, description="a still scene is inferred at least this often")
    mask: list[list[Coordinates]] = Field([], description="polygons where motion does not count (a clock, a tree)")

    @field_validator("mask")
    @classmethod
    def _polygons(cls, value: list[list[Coordinates]]) -> list[list[Coordinates]]:
        for polygon in value:
            if len(polygon) < 3:
                raise ValueError("each mask polygon needs at least 3 points")
            _no_negative(polygon)
        return value


class CameraConfig(Strict):
    name: str = Field("cam0", description="the camera's name in results, topics and logs")
    source: str = Field(
        "auto",
        description="auto | picamera2 | /dev/videoN | N | rtsp://… | http(s)://… | video file | image, "
        "directory or glob | pattern",
    )
    width: int = Field(1280, gt=0, le=MAX_SIDE, description="capture width (cameras, pattern)")
    height: int = Field(720, gt=0, le=MAX_SIDE, description="capture height (cameras, pattern)")
    fps: float = Field(30.0, gt=0, le=MAX_FPS, description="capture rate asked of cameras; the pattern's rate")
    fourcc: str = Field("", description="V4L2 pixel format, e.g. MJPG for USB cameras that need it for full fps")
    decode_scale: Literal["auto", 1, 2, 4, 8] = Field(
        "auto",
        description="V4L2 with fourcc MJPG: decode frames at 1/N size (libjpeg DCT scaling); auto: the smallest that "
        "still covers the model input, full size when snapshots, MQTT or the HTTP stream at source size need it",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport")
    realtime: bool = Field(False, description="pace video files at their own fps, like a live camera")
    loop: bool = Field(False, description="start a video file or image set again at the end")
    reconnect: ReconnectConfig = ReconnectConfig()
    motion: MotionConfig = MotionConfig()
    detect_fps: float = Field(0.0, ge=0, le=MAX_FPS, description="infer at most this many frames a second (0: "
                              "every frame the model keeps up with)")
    frame_id: str = Field("", pattern=r"^[A-Za-z0-9_/.-]{0,128}$", description="header.frame_id of the robot "
                          "output (ROS 2's camera optical frame); default: the camera's name")
    zones: dict[str, ZoneConfig] = Field({}, description="named areas tracked objects enter and leave")
    lines: dict[str, LineConfig] = Field({}, description="named lines tracked objects cross in and out")

    @field_validator("zones", "lines")
    @classmethod
    def _shapes_are_named(cls, value: dict) -> dict:
        for name in value:
            _named(name, "zone or line name")
        return value

    @field_validator("name")
    @classmethod
    def _name_is_a_name(cls, value: str) -> str:
        return _named(value, "camera name")

    @field_validator("fourcc")
    @classmethod
    def _fourcc_is_four_chars(cls, value: str) -> str:
        if value and len(value) != 4:
            raise ValueError("must be four characters, e.g. MJPG or YUYV (or empty for the camera's default)")
        return value


ACCELERATOR_PATTERN = r"^(auto|cpu|edgetpu(:usb(:\d+)?|:pci(:\d+)?)?)$"


class CameraEntry(CameraConfig):
    """One of `cameras:`: a camera as `camera:` describes one, plus the pipeline it runs and, optionally, its
    accelerator."""

    pipeline: str | None = Field(None, description="the pipeline this camera runs (default: --pipeline, detect)")
    accelerator: str | None = Field(None, pattern=ACCELERATOR_PATTERN,
                                    description="this camera's accelerator (default: the top-level accelerator)")

    def camera(self) -> CameraConfig:
        """The entry as the `camera:` of its own run."""
        return CameraConfig.model_validate(self.model_dump(exclude={"pipeline", "accelerator"}, by_alias=True))


class ModelsConfig(Strict):
    dir: str = Field("models", description="where named models live (relative paths: to the config file)")


class JsonlConfig(Strict):
    enabled: bool = Field(False, description="write one JSON line per processed frame")
    path: str = Field("-", description="file to append to, or - for standard output")
    max_mb: float = Field(100.0, gt=0, description="a file is renamed PATH.1 (PATH.1 to PATH.2, ...) and begun "
                          "again when a line would take it past this")
    keep: int = Field(5, ge=0, le=100, description="renamed files kept, the oldest deleted: the files never hold "
                      "more than (keep + 1) x max_mb (600 MB by default)")
    min_free_mb: float = Field(200.0, ge=0, description="pause (with a warning) when free disk is below this")


class LoggingConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"


class TlsConfig(Strict):
    enabled: bool = Field(False, description="connect with TLS (port 8883 usually)")
    ca: str = Field("", description="CA certificate file; empty: the system's trusted CAs")
    cert: str = Field("", description="client certificate file, for brokers that require one")
    key: str = Field("", description="the client certificate's private key file")
    insecure: bool = Field(False, description="skip the server certificate check (testing only)")


#: topic levels without MQTT's wildcards, separated by single slashes
TOPIC_PATTERN = r"^[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,3}$"


class DiscoveryConfig(Strict):
    enabled: bool = Field(True, description="publish Home Assistant MQTT discovery documents")
    prefix: str = Field("homeassistant", pattern=TOPIC_PATTERN, description="Home Assistant's discovery prefix")
    mode: Literal["device", "entity"] = Field(
        "device", description="device: one document per instance (Home Assistant 2024.11 and later); entity: one "
        "per entity, for older releases")


class MqttConfig(Strict):
    enabled: bool = False
    host: str = Field("localhost", pattern=r"^[^\s/]{1,253}$", description="broker host")
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = Field("", pattern=r"^[A-Za-z0-9_.-]{0,64}$",
                           description="default: smartcam-<host>-<camera.name>-<pipeline>, unique per instance")
    username: str = Field("", description="e.g. ${MQTT_USERNAME}")
    password: str = Field("", description="e.g. ${MQTT_PASSWORD}")
    tls: TlsConfig = TlsConfig()
    keepalive_s: int = Field(60, ge=5, le=3600)
    qos: Literal[0, 1, 2] = 1
    topic_prefix: str = Field("smartcam", pattern=TOPIC_PATTERN, description="the first level(s) of every topic")
    stats_interval_s: float = Field(30.0, gt=0, le=86400, description="how often {prefix}/stats is published")
    publish_results: bool = Field(False, description="every processed frame on {prefix}/{camera}/results")
    outbox_size: int = Field(200, ge=1, le=100_000, description="messages held while the broker is slow or gone")
    discovery: DiscoveryConfig = DiscoveryConfig()


class StreamConfig(Strict):
    max_fps: float = Field(10.0, gt=0, le=MAX_FPS, description="/stream.mjpg frame rate cap")
    width: int = Field(0, ge=0, le=MAX_SIDE, description="/stream.mjpg width in pixels (0: the source's)")
    quality: int = Field(80, ge=10, le=100, description="JPEG quality")


#: the shortest secrets accepted for a bind beyond loopback
MIN_TOKEN = 16
MIN_PASSWORD = 8


def is_loopback(host: str) -> bool:
    """`localhost`, or an address on the loopback network (127.0.0.0/8, ::1). Decided by address, never by how the
    name looks: a host name such as 127.example.com is not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpConfig(Strict):
    # `bind` comes after the auth keys so its check can see them
    enabled: bool = False
    token: str = Field("", description="bearer token (Authorization: Bearer …, or ?token=…)")
    username: str = Field("", description="basic auth user")
    password: str = Field("", description="basic auth password")
    allow_unauthenticated: bool = Field(False, description="allow a non-loopback bind without auth")
    bind: str = Field("127.0.0.1", description="address to listen on; not loopback needs auth")
    port: int = Field(8080, ge=0, le=65535)
    stall_after_s: float = Field(5.0, gt=0, le=3600, description="/healthz turns 503 after this long without a frame")
    stream: StreamConfig = StreamConfig()

    @property
    def has_auth(self) -> bool:
        return bool(self.token or (self.username and self.password))

    @field_validator("bind")
    @classmethod
    def _open_bind_needs_auth(cls, bind: str, info: ValidationInfo) -> str:
        given = info.data
        if not given.get("enabled") or is_loopback(bind) or given.get("allow_unauthenticated"):
            return bind
        token, user, password = given.get("token", ""), given.get("username", ""), given.get("password", "")
        if not token and not (user and password):
            raise ValueError("binding it exposes the camera to the network: set http.token (or http.username "
                             "and http.password), or write http.allow_unauthenticated: true")
        if token and len(token) < MIN_TOKEN:
            raise ValueError(f"an open bind needs a http.token of at least {MIN_TOKEN} characters (this one has "
                             f"{len(token)}): e.g. openssl rand -hex 16")
        if not token and len(password) < MIN_PASSWORD:
            raise ValueError(f"an open bind needs a http.password of at least {MIN_PASSWORD} characters")
        return bind


class SnapshotsConfig(Strict):
    enabled: bool = False
    dir: str = Field("snapshots", description="where JPEGs are written (relative: to the config file)")
    cooldown_s: float = Field(30.0, ge=0, le=86400, description="at most one snapshot per label this often")
    max_files: int = Field(1000, ge=1, le=1_000_000, description="oldest deleted beyond this count")
    max_mb: float = Field(500.0, gt=0, description="oldest deleted beyond this total size")
    min_free_mb: float = Field(200.0, ge=0, description="pause (with a warning) when free disk is below this")
    annotated: bool = Field(True, description="draw the boxes on snapshots")
    quality: int = Field(90, ge=10, le=100, description="JPEG quality")


class WebhooksConfig(Strict):
    enabled: bool = False
    urls: list[str] = Field([], description="POST the event JSON to each")

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, urls: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("enabled") and not urls:
            raise ValueError("empty: add a URL, or set webhooks.enabled: false")
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{mask_credentials(url)!r} is not an http:// or https:// URL")
        return urls
    timeout_s: float = Field(5.0, gt=0, le=300)
    retries: int = Field(3, ge=0, le=20, description="attempts after the first, with doubling backoff")
    queue_size: int = Field(100, ge=1, le=10_000, description="events held for slow receivers; the oldest dropped")


def _port_number(text: str, form: str) -> int:
    """`text` as a port, 1-65535; a ValueError naming the form otherwise (99999 would wrap around to 34463)."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"port {text!r} is not a number from 1 to 65535 ({form})")
    return int(text)


class UdpConfig(Strict):
    """The robot output over UDP: one datagram per processed frame, from the end of the inference lane."""

    enabled: bool = False
    target: str = Field("127.0.0.1:5600", pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]{1,253}):\d{1,5}$",
                        description="HOST:PORT to send to; a multicast group (224.0.0.0/4) is sent multicast")
    multicast_ttl: int = Field(1, ge=0, le=255, description="hops a multicast datagram may take (1: this network)")

    @field_validator("target")
    @classmethod
    def _port_in_range(cls, target: str) -> str:
        _port_number(target.rpartition(":")[2], "HOST:PORT")
        return target
    label_info_s: float = Field(5.0, gt=0, le=86400, description="how often the class map is sent again")


#: the longest path a unix socket address holds (sockaddr_un.sun_path less its NUL)
MAX_IPC_PATH = 107


class ZmqConfig(Strict):
    """The robot output over ZeroMQ: a PUB socket, one message per processed frame, from the end of the inference
    lane."""

    enabled: bool = False
    bind: str = Field("tcp://127.0.0.1:5601", pattern=r"^(tcp|ipc|inproc)://\S+$",
                      description="the PUB socket's endpoint: tcp://HOST:PORT (tcp://*:5601 for every interface), "
                                  "ipc://PATH")

    @field_validator("bind")
    @classmethod
    def _tcp_has_a_port(cls, bind: str) -> str:
        scheme, _, rest = bind.partition("://")
        if scheme == "ipc" and len(rest.encode()) > MAX_IPC_PATH:
            raise ValueError(f"an ipc:// path is at most {MAX_IPC_PATH} bytes (a unix socket's limit); use a shorter "
                             "one, e.g. ipc:///run/smartcam/robot.sock")
        if scheme == "tcp":
            host, colon, port = rest.rpartition(":")
            if not colon or not host:
                raise ValueError("expected tcp://ADDRESS:PORT, e.g. tcp://*:5601 or tcp://127.0.0.1:5601")
            _port_number(port, "tcp://ADDRESS:PORT")
        return bind
    label_info_s: float = Field(5.0, gt=0, le=86400, description="how often the class map is sent again")


class DeviceConfig(Strict):
    """`config.yaml`: what this board has and where results go."""

    camera: CameraConfig = CameraConfig()
    cameras: list[CameraEntry] = Field([], description="several cameras in one process, instead of camera:")
    accelerator: str = Field(
        "auto", pattern=ACCELERATOR_PATTERN, description="auto | cpu | edgetpu | edgetpu:usb[:N] | edgetpu:pci:N"
    )
    models: ModelsConfig = ModelsConfig()
    jsonl: JsonlConfig = JsonlConfig()
    mqtt: MqttConfig = MqttConfig()
    http: HttpConfig = HttpConfig()
    snapshots: SnapshotsConfig = SnapshotsConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    udp: UdpConfig = UdpConfig()
    zmq: ZmqConfig = ZmqConfig()
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="after")
    def _one_way_to_name_cameras(self) -> DeviceConfig:
        if self.cameras and "camera" in self.model_fields_set:
            raise ValueError("give camera: (one camera) or cameras: (several), not both: move camera: into cameras:")
        names = [camera.name for camera in self.cameras]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"cameras: every camera needs its own name ({', '.join(twice)} is given twice); the "
                             "name makes its topics, entities and stats its own")
        return self


# --- pipeline stages: one parameter model per stage name -------------------------------------------------------


class PreprocessParams(Strict):
    resize: Literal["stretch", "letterbox", "crop"] = Field(
        "stretch", description="stretch: whole frame, aspect lost; letterbox: whole frame, padded; crop: centre"
    )
    float_range: tuple[float, float] = Field(
        (-1.0, 1.0), description="pixel range a float32 model expects: [-1, 1] or [0, 1]"
    )


class InferenceParams(Strict):
    model: str = Field(description="a named model (models/manifest.yaml) or a path to a .tflite file")
    labels: str | list[str] | None = Field(
        None, description="a label file, or the class names in order ([face]); default: the named model's (a "
        "model given by path is matched by checksum), else the model's metadata")
    accelerator: str | None = Field(
        None, pattern=ACCELERATOR_PATTERN, description="overrides config.yaml's accelerator for this pipeline"
    )
    threads: int | Literal["auto"] = Field(
        "auto", description="CPU threads for XNNPACK, 1 to 16; auto: from the cores and whether any output is on")

    @field_validator("threads", mode="before")
    @classmethod
    def _threads(cls, value: object) -> int | str:
        """One clear problem for a wrong count, rather than one per member of the union."""
        if value == "auto":
            return "auto"
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 16:
            return value
        raise ValueError("expected a number of threads from 1 to 16, or auto")


class AnchorParams(Strict):
    """SSD anchor generation (MediaPipe's SsdAnchorsCalculator with fixed anchor size), e.g. BlazeFace."""

    strides: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        [8, 16, 16, 16], min_length=1, max_length=16, description="one per feature layer; equal strides share a grid")
    anchors_per_layer: int = Field(2, ge=1, le=64, description="anchors each layer adds per grid cell")
    offset: float = Field(0.5, description="anchor centre within its cell")
    box_scale: float | None = Field(None, gt=0, description="regressor units per input; default the input size")


class PostprocessParams(Strict):
    kind: Literal["auto", "ssd", "ssd_anchors", "classifier"] = Field(
        "auto", description="how to decode the outputs; auto decides from the output tensors"
    )
    min_score: float = Field(0.5, ge=0, le=1, description="drop results scoring below this")
    max_results: int = Field(20, ge=1, le=1000, description="keep at most this many (top-k for classifiers)")
    nms_iou: float = Field(0.3, gt=0, le=1, description="ssd_anchors: overlap above which boxes are merged")
    anchors: AnchorParams = AnchorParams()


class FilterParams(Strict):
    labels: list[str] | None = Field(None, description="keep only these labels (default: all)")
    min_score: float | None = Field(None, ge=0, le=1, description="a stricter score threshold than postprocess's")
    min_area: float = Field(0.0, ge=0, le=1, description="drop boxes smaller than this fraction of the frame")


class TrackParams(Strict):
    """The `track` stage: ids that stay with an object while it is in view (app/scene/tracker.py)."""

    iou: float = Field(0.3, gt=0, le=1, description="the least overlap of a detection with a track's predicted box "
                       "to continue it")
    min_hits: int = Field(3, ge=1, le=1000, description="frames in a row an object is seen before it is tracked "
                          "(its new event)")
    max_lost: int = Field(30, ge=1, le=100_000, description="inferred frames without it before a track ends")
    stationary_s: float = Field(10.0, gt=0, le=86400, description="seconds without moving before an object is "
                                "stationary")


class OverlayParams(Strict):
    """Drawn on a copy, and only when an output needs pixels (stream, snapshot)."""

    boxes: bool = Field(True, description="draw boxes with `label score`, a stable colour per label")
    banner: bool = Field(True, description="a banner with fps, inference ms and the time of the frame's stamp")
    zones: bool = Field(True, description="the camera's zones and lines, with their counts (with the track stage)")
    motion: bool = Field(False, description="the regions that moved (with motion gating)")


class SnapshotParams(Strict):
    labels: list[str] | None = Field(None, description="labels that take a snapshot (default: publish.labels)")
    min_score: float = Field(0.6, ge=0, le=1, description="the detection's score needed for a snapshot")


class PublishParams(Strict):
    """What matters to this pipeline's outputs: events, counts, snapshots, Home Assistant entities."""

    labels: list[str] | None = Field(None, description="the labels watched for events and counts (default: all)")
    min_score: float = Field(0.5, ge=0, le=1, description="detections counted for events")
    appear_frames: int = Field(2, ge=1, le=10_000, description="frames a new count must hold before an event fires")
    clear_frames: int = Field(5, ge=1, le=10_000, description="frames without a label before it is cleared")
    snapshots: SnapshotParams = SnapshotParams()


#: the inference lane's stages, in the order they run; each at most once; the first three are required
LANE_STAGES: dict[str, type[Strict]] = {
    "preprocess": PreprocessParams,
    "inference": InferenceParams,
    "postprocess": PostprocessParams,
    "filter": FilterParams,
    "track": TrackParams,
}
REQUIRED_STAGES = ("preprocess", "inference", "postprocess")
#: the output lane's blocks: top-level keys of a pipeline file, beside `stages`
OUTPUT_BLOCKS: dict[str, type[Strict]] = {"overlay": OverlayParams, "publish": PublishParams}
#: `--set` keys that belong to the pipeline file rather than config.yaml
PIPELINE_KEYS = ("stages", *OUTPUT_BLOCKS)


@dataclass(frozen=True)
class PipelineConfig:
    """`pipelines/NAME.yaml`, typed: the inference lane's stages in their order, then the output lane's blocks."""

    name: str
    description: str
    preprocess: PreprocessParams
    inference: InferenceParams
    postprocess: PostprocessParams
    filter: FilterParams | None = None
    track: TrackParams | None = None
    overlay: OverlayParams = field(default_factory=OverlayParams)
    publish: PublishParams = field(default_factory=PublishParams)

    @property
    def stages(self) -> list[tuple[str, Strict]]:
        """The inference lane's stages that this pipeline runs, in lane order, with their parameters."""
        present = {"preprocess": self.preprocess, "inference": self.inference, "postprocess": self.postprocess,
                   "filter": self.filter, "track": self.track}
        return [(name, params) for name, params in present.items() if params is not None]

    def watched_labels(self) -> dict[str, list[str]]:
        """The labels this pipeline names, by the key that names them (for checking them against the model)."""
        keys = {"stages.filter.labels": self.filter.labels if self.filter else None,
                "publish.labels": self.publish.labels, "publish.snapshots.labels": self.publish.snapshots.labels}
        return {key: labels for key, labels in keys.items() if labels}


def relative_to_config(config_path: Path, value: str) -> Path:
    """A path written in a config file: absolute (or ~), or relative to the file's folder."""
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else config_path.parent / path


@dataclass(frozen=True)
class DeviceSettings:
    """config.yaml, validated, and where it came from (for commands that run no pipeline)."""

    device: DeviceConfig
    config_path: Path
    #: what is allowed but unwise (a readable secret): logged by `run`, printed by `validate`
    warnings: tuple[str, ...] = field(default=(), kw_only=True)

    def resolve_path(self, value: str) -> Path:
        """A path from config.yaml: absolute, or relative to the config file's folder."""
        return relative_to_config(self.config_path, value)

    @property
    def models_dir(self) -> Path:
        return self.resolve_path(self.device.models.dir)


@dataclass(frozen=True)
class Settings(DeviceSettings):
    """Everything a run needs, validated: the device, the pipeline and the files each came from."""

    pipeline: PipelineConfig
    pipeline_path: Path


# --- loading ---------------------------------------------------------------------------------------------------

#: ${VAR}, ${VAR:-default}, and ${cred:NAME}: a systemd credential (LoadCredential=NAME:FILE in the unit)
_REFERENCE = re.compile(r"\$\{(?:cred:([\w.-]+)|(\w+)(?::-([^}]*))?)\}")
#: config.yaml keys that hold secrets: a literal one in a file others can read is a warning
SECRET_KEYS = ("mqtt.password", "http.token", "http.password")
#: config.yaml keys holding URLs, whose credentials (app/redact.py `url_secrets`) are secrets too; `[]`: each item
SECRET_URL_KEYS = ("camera.source", "cameras[].source", "webhooks.urls[]")


@dataclass
class _Problems:
    """Collects every problem of one load so `validate` can show them all at once."""

    lines: list[str] = field(default_factory=list)

    def add(self, where: str, path: str, message: str) -> None:
        self.lines.append(f"{where}: {path}: {message}" if path else f"{where}: {message}")


def pipeline_names() -> list[str]:
    return sorted(p.stem for p in PIPELINES_DIR.glob("*.yaml"))


def pipeline_path(name: str) -> Path:
    """`--pipeline NAME` is a file in pipelines/; `--pipeline FILE.yaml` is the explicit way to give a file."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise ConfigError(f"{candidate}: pipeline file not found")
        return candidate
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        shown = name if len(name) <= 40 else name[:40] + "…"
        raise ConfigError(f"--pipeline {shown!r}: a pipeline name is letters, digits, _ and - (a name in "
                          f"{PIPELINES_DIR.name}/: {', '.join(pipeline_names())}); give a file as PATH.yaml")
    path = PIPELINES_DIR / f"{name}.yaml"
    if not path.is_file():
        close = difflib.get_close_matches(name, pipeline_names(), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"no pipeline named {name!r} ({hint}available: {', '.join(pipeline_names())})")
    return path


def _substitute_env(value: Any, path: str, where: str, problems: _Problems) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string, recursively."""
    if isinstance(value, dict):
        return {k: _substitute_env(v, f"{path}.{k}" if path else str(k), where, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, f"{path}[{i}]", where, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        credential, name, default = match.groups()
        if credential:
            return _credential(credential, path, where, problems)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.add(where, path, f"environment variable {name} is not set (set it, or write ${{{name}:-default}})")
        return ""

    return _REFERENCE.sub(replace, value)


def _credential(name: str, path: str, where: str, problems: _Problems) -> str:
    """The systemd credential `name` ($CREDENTIALS_DIRECTORY/name), without its final newline."""
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        problems.add(where, path, f"${{cred:{name}}}: no credentials here ($CREDENTIALS_DIRECTORY is not set; the "
                     f"unit's LoadCredential={name}:FILE provides it)")
        return ""
    try:
        return (Path(folder) / name).read_text(encoding="utf-8").rstrip("\n")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(where, path, f"${{cred:{name}}}: cannot read {Path(folder) / name} ({exc})")
        return ""


def secret_warnings(config_path: Path, raw: dict) -> list[str]:
    """A warning naming each key (never its value) that holds a secret written literally, not as a ${…} reference,
    in a config file that other users can read: SECRET_KEYS, and the URLs of SECRET_URL_KEYS that carry a password,
    token or key."""
    urls = [where for key in SECRET_URL_KEYS for where, value in _values_at(raw, key)
            if isinstance(value, str) and any(_written_out(secret) for secret in url_secrets(value))]
    literal = [where for key in SECRET_KEYS for where, value in _values_at(raw, key) if _written_out(value)] + urls
    try:
        mode = config_path.stat().st_mode
    except OSError:
        return []
    if not literal or not mode & 0o004:
        return []
    in_url = "; in a URL, only its credential: rtsp://user:${CAMERA_PASSWORD}@host/…" if urls else ""
    return [f"{config_path}: {', '.join(literal)} written in a file every user can read (mode {mode & 0o777:o}): "
            f"chmod o-r {config_path}, or move the secret to the environment (${{VAR}}, with the unit's "
            f"EnvironmentFile=) or to a systemd credential (${{cred:NAME}}, with LoadCredential=NAME:FILE){in_url}"]


def _written_out(value: object) -> bool:
    """A secret given as itself, not as a ${VAR} or ${cred:NAME} reference."""
    return isinstance(value, str) and bool(value) and "${" not in value


def _values_at(raw: object, key: str) -> list[tuple[str, object]]:
    """What config.yaml as written holds at `key`, each with its path: `cameras[].source` gives every camera's
    (`cameras[0].source`, ...); a key not there gives nothing or None."""
    found: list[tuple[str, object]] = [("", raw)]
    for part in key.split("."):
        name, each = part.removesuffix("[]"), part.endswith("[]")
        deeper: list[tuple[str, object]] = []
        for path, node in found:
            value, where = node.get(name) if isinstance(node, dict) else None, f"{path}.{name}" if path else name
            if not each:
                deeper.append((where, value))
            elif isinstance(value, list):
                deeper += [(f"{where}[{i}]", item) for i, item in enumerate(value)]
        found = deeper
    return found


def _parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. --set stages.inference.threads=2")
    try:
        value = load_value(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        if isinstance(exc, ComposerError):  # valid YAML beyond a file's bounds: the raw value could be huge
            raise ConfigError(f"--set {key}: the value is {exc.problem}") from None
        raise ConfigError(f"--set {text}: the value is not valid YAML (quote it: --set '{key}=\"{raw}\"')") from None
    return key.strip().split("."), value


def _apply_override(target: dict, keys: list[str], value: Any) -> None:
    for depth, key in enumerate(keys[:-1]):
        child = target.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {'.'.join(keys)}: {'.'.join(keys[:depth + 1])} is not a mapping in the file")
        target = child
    target[keys[-1]] = value


def _stage_list(raw: Any, where: str, problems: _Problems) -> dict[str, Any]:
    """`stages:` is a list of one-key mappings (`- preprocess: {resize: stretch}`) in lane order.

    Returns each stage's raw parameters by name; every unknown, misplaced or repeated entry is a problem naming it.
    """
    if not isinstance(raw, list):
        problems.add(where, "stages", "must be a list like `- preprocess: {resize: stretch}`")
        return {}
    order = list(LANE_STAGES)
    stages: dict[str, Any] = {}
    positions: dict[str, int] = {}
    for i, item in enumerate(raw):
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, dict) or len(item) != 1:
            problems.add(where, f"stages[{i}]", "each stage is one `name: {params}` mapping")
            continue
        ((name, params),) = item.items()
        name = str(name)
        if name in OUTPUT_BLOCKS:
            problems.add(where, f"stages[{i}]", f"{name} is a block of the output lane, not a stage: move it out of "
                         f"`stages:` to the top level of the file (`{name}: {{...}}`)")
        elif name not in LANE_STAGES:
            close = difflib.get_close_matches(name, order, n=1)
            hint = f"did you mean {close[0]}?" if close else f"the stages are {', '.join(order)}"
            problems.add(where, f"stages[{i}]", f"unknown stage {name} ({hint})")
        elif name in stages:
            problems.add(where, f"stages[{i}]", f"a second {name} stage (each stage comes at most once)")
        else:
            stages[name] = {} if params is None else params
            positions[name] = i
    for name, i in positions.items():
        before = [other for other in order[:order.index(name)] if positions.get(other, -1) > i]
        if before:
            problems.add(where, f"stages[{i}]", f"{name} must come after {', '.join(before)} "
                         f"(the order is {', '.join(order)})")
    for required in REQUIRED_STAGES:
        if required not in stages:
            problems.add(where, "stages", f"needs a {required} stage")
    return stages


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The config model that holds the key at `loc` (for suggesting the closest valid key)."""
    for part in loc:
        if str(part).isdigit():  # an item of the list the previous key holds (cameras.0)
            continue
        info = model.model_fields.get(str(part))
        annotation = getattr(info, "annotation", None)
        if typing.get_origin(annotation) is list:
            (annotation,) = typing.get_args(annotation)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _validate(model: type[Strict], data: dict, prefix: str, where: str, set_keys: set[str], problems: _Problems):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(str(p) for p in error["loc"])
            path = ".".join((prefix, *loc) if prefix else loc)
            source = "--set" if path in set_keys else where
            if error["type"] == "extra_forbidden":
                parent = _model_at(model, loc[:-1])
                close = difflib.get_close_matches(loc[-1], list(parent.model_fields) if parent else [], n=1)
                parent_path = path.rpartition(".")[0]
                hint = f"did you mean {'.'.join(filter(None, (parent_path, close[0])))}?" if close else (
                    f"valid keys: {', '.join(parent.model_fields)}" if parent else "remove it")
                problems.add(source, path, f"unknown key ({hint})")
            else:
                shown = mask_credentials(repr(error["input"]))  # a URL given where it does not belong
                shown = shown if len(shown) <= 60 else shown[:60] + "…"
                got = f" (got {shown})" if error["type"] != "missing" else ""
                message = error["msg"].removeprefix("Value error, ")
                problems.add(source, path, f"{message}{got}")
        return None


def _split_overrides(overrides: list[str] | tuple[str, ...], problems: _Problems):
    """Parsed `--set` overrides: (config.yaml ones, pipeline-file ones, every key path set)."""
    device, pipeline, keys = [], [], set()
    for text in overrides:
        path, value = _parse_override(text)
        keys.add(".".join(path))
        if path[0] not in PIPELINE_KEYS:
            device.append((path, value))
        elif path[0] == "stages" and len(path) < 3:
            problems.add("--set", ".".join(path), "stage parameters are set as stages.<stage>.<param>=VALUE")
        elif len(path) < 2:
            problems.add("--set", path[0], f"set a key of the block, e.g. {path[0]}.<key>=VALUE")
        else:
            pipeline.append((path, value))
    return device, pipeline, keys


def _device(config_path: Path, overrides: list, set_keys: set[str],
            problems: _Problems) -> tuple[DeviceConfig | None, list[str]]:
    """config.yaml validated, and the warnings about it."""
    text = read_mapping(config_path)
    warnings = secret_warnings(config_path, text)
    raw = _substitute_env(text, "", str(config_path), problems)
    for path, value in overrides:
        if path[0] == "camera" and raw.get("cameras"):  # camera: and cameras: together would be refused
            problems.add("--set", ".".join(path), f"{config_path} lists cameras:, each with its own keys: set them "
                         "in the file (--source, too, names one camera's source)")
            continue
        _apply_override(raw, path, value)
    device = _validate(DeviceConfig, raw, "", str(config_path), set_keys, problems)
    if device is not None:
        _check_tls_files(device.mqtt, config_path, problems)
    return device, warnings


def _check_tls_files(mqtt: MqttConfig, config_path: Path, problems: _Problems) -> None:
    """The certificate files MQTT's TLS names must be there to read: the run would refuse them at start."""
    if not (mqtt.enabled and mqtt.tls.enabled):
        return
    for key in ("ca", "cert", "key"):
        value = getattr(mqtt.tls, key)
        path = relative_to_config(config_path, value)
        if value and not path.is_file():
            problems.add(str(config_path), f"mqtt.tls.{key}", f"{path} is not a file (a certificate or key in PEM)")
        elif value and not os.access(path, os.R_OK):
            problems.add(str(config_path), f"mqtt.tls.{key}", f"{path} cannot be read by this user")


def load_device(config: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> DeviceSettings:
    """config.yaml alone, for commands that run no pipeline."""
    config_path = Path(config) if config else DEFAULT_CONFIG
    problems = _Problems()
    device_overrides, pipeline_overrides, set_keys = _split_overrides(overrides, problems)
    if pipeline_overrides:
        problems.add("--set", ".".join(pipeline_overrides[0][0]), "this command runs no pipeline")
    device, warnings = _device(config_path, device_overrides, set_keys, problems)
    if problems.lines or device is None:
        raise ConfigError(problems.lines)
    return DeviceSettings(device, config_path, warnings=tuple(warnings))


def _apply_pipeline_override(raw: dict, stages: dict[str, Any], path: list[str], value: Any, pipe_path: Path,
                             problems: _Problems) -> None:
    """One `--set stages.NAME.KEY=V`, `publish.KEY=V` or `overlay.KEY=V` onto the pipeline file's raw data."""
    if path[0] != "stages":
        block = raw.setdefault(path[0], {})
        if isinstance(block, dict):  # otherwise reported when the block is validated
            _apply_override(block, path[1:], value)
        return
    if path[1] not in stages:
        names = ", ".join(stages)
        problems.add("--set", ".".join(path), f"no such stage in {pipe_path.name} (its stages: {names})")
    elif isinstance(stages[path[1]], dict):  # otherwise reported below: its parameters are not a mapping
        _apply_override(stages[path[1]], path[2:], value)


def load_settings(pipeline: str, config: str | Path | None = None,
                  overrides: list[str] | tuple[str, ...] = ()) -> Settings:
    """Load, substitute, override and validate both files; raise ConfigError listing every problem."""
    config_path = Path(config) if config else DEFAULT_CONFIG
    pipe_path = pipeline_path(pipeline)
    problems = _Problems()
    device_overrides, pipeline_overrides, set_keys = _split_overrides(overrides, problems)
    device, warnings = _device(config_path, device_overrides, set_keys, problems)
    pipeline_config = _pipeline(pipe_path, pipeline_overrides, set_keys, problems)
    if problems.lines or device is None or pipeline_config is None:
        raise ConfigError(problems.lines)
    return Settings(device, config_path, pipeline_config, pipe_path, warnings=tuple(warnings))


def load_cameras(pipeline: str, config: str | Path | None = None,
                 overrides: list[str] | tuple[str, ...] = ()) -> list[Settings]:
    """Every camera's settings: each of config.yaml's `cameras:` with its pipeline (`pipeline` when it names none)
    and its accelerator, or the one `camera:` with `pipeline`. Several cameras' HTTP pages listen on `http.port`,
    `http.port + 1`, ... in their order; an explicit `mqtt.client_id` gets each camera's name appended, so every
    camera has its own identity on the broker."""
    config_path = Path(config) if config else DEFAULT_CONFIG
    problems = _Problems()
    device_overrides, pipeline_overrides, set_keys = _split_overrides(overrides, problems)
    device, warnings = _device(config_path, device_overrides, set_keys, problems)
    if device is not None and not device.cameras:
        return [load_settings(pipeline, config, overrides)]
    runs = []
    for i, entry in enumerate(device.cameras if device else []):
        try:
            pipe_path = pipeline_path(entry.pipeline or pipeline)
        except ConfigError as exc:
            problems.add(str(config_path), f"cameras[{i}].pipeline", str(exc))
            continue
        pipeline_config = _pipeline(pipe_path, pipeline_overrides, set_keys, problems)
        if device is None or pipeline_config is None:
            continue
        http, mqtt = device.http, device.mqtt
        own = device.model_copy(update={
            "camera": entry.camera(), "cameras": [], "accelerator": entry.accelerator or device.accelerator,
            "http": http.model_copy(update={"port": http.port + i if http.port else 0}),
            "mqtt": mqtt.model_copy(update={"client_id": f"{mqtt.client_id}-{entry.name}"[:64]
                                            if mqtt.client_id else ""})})
        runs.append(Settings(own, config_path, pipeline_config, pipe_path, warnings=tuple(warnings)))
    if problems.lines or device is None:
        raise ConfigError(problems.lines)
    return runs


def _pipeline(pipe_path: Path, pipeline_overrides: list, set_keys: set[str],
              problems: _Problems) -> PipelineConfig | None:
    """A pipeline file validated, with the `--set` overrides of its keys; None (and problems) when it is wrong."""
    where = str(pipe_path)
    errors_before = len(problems.lines)
    raw = _substitute_env(read_mapping(pipe_path), "", where, problems)
    stages = _stage_list(raw.pop("stages", None), where, problems)
    for path, value in pipeline_overrides:
        _apply_pipeline_override(raw, stages, path, value, pipe_path, problems)
    description = raw.pop("description", "")
    blocks: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in OUTPUT_BLOCKS:
            known = ["description", "stages", *OUTPUT_BLOCKS]
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"a pipeline file has {', '.join(known)}"
            problems.add(where, str(key), f"unknown key ({hint})")
            continue
        model = _validate_mapping(OUTPUT_BLOCKS[key], value, str(key), where, set_keys, problems)
        if model is not None:
            blocks[key] = model
    for name, params in stages.items():
        model = _validate_mapping(LANE_STAGES[name], params, f"stages.{name}", where, set_keys, problems)
        if model is not None:
            blocks[name] = model
    if len(problems.lines) > errors_before:
        return None
    return PipelineConfig(pipe_path.stem, str(description or ""), **blocks)


def _validate_mapping(model: type[Strict], value: Any, prefix: str, where: str, set_keys: set[str],
                      problems: _Problems) -> Any:
    """A block's parameters validated as `model`; a block that is not a mapping is a problem naming it."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.add(where, prefix, "parameters must be a mapping, e.g. {threads: 2}")
        return None
    return _validate(model, value, prefix, where, set_keys, problems)
