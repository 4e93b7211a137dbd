"""The sections of config.yaml that say where results go: JSON lines, MQTT (with TLS and Home Assistant
discovery), the HTTP page and API (with the auth an open bind needs), snapshots and webhooks."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator

from app.config.base import MAX_FPS, MAX_SIDE, Strict
from app.redact import mask_credentials

class JsonlConfig(Strict):
    enabled: bool = Field(False, description="write one JSON line per processed frame")
    path: str = Field("-", description="file to append to, or - for standard output")
    max_mb: float = Field(100.0, gt=0, description="a file is renamed PATH.1 (PATH.1 to PATH.2, ...) and begun "
                          "again when a line would take it past this")
    keep: int = Field(5, ge=0, le=100, description="renamed files kept, the oldest deleted: the files never hold "
                      "more than (keep + 1) x max_mb (600 MB by default)")
    min_free_mb: float = Field(200.0, ge=0, description="pause (with a warning) when free disk is below this")


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
