"""`config.yaml` as a whole: the board's cameras, accelerator, models folder, outputs and logging, and the rule
that cameras are given one way and each by a name of its own."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from app.config.base import ACCELERATOR_PATTERN, Strict
from app.config.camera import CameraConfig, CameraEntry
from app.config.clips import CheckedClipsConfig, ClipsConfig
from app.config.outputs import HttpConfig, JsonlConfig, MqttConfig, SnapshotsConfig, WebhooksConfig
from app.config.privacy import PrivacyConfig
from app.config.robot import UdpConfig, ZmqConfig
from app.config.teach import TeachConfig

class ModelsConfig(Strict):
    dir: str = Field("models", description="where named models live (relative paths: to the config file)")


class LoggingConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"


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
    privacy: PrivacyConfig = PrivacyConfig()
    clips: CheckedClipsConfig = ClipsConfig()
    teach: TeachConfig = TeachConfig()
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
