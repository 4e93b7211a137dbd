"""Configuration: `config.yaml` (the device) and `pipelines/NAME.yaml` (the processing), loaded into typed models.

One module per topic: the schema of each section (base, camera, outputs, robot, device, pipeline), where the files
are (files), `${VAR}` and `${cred:NAME}` references and secrets (references), `--set` overrides (overrides), the
problems a load reports, each `FILE: key.path: what is wrong (the fix)` (problems), loading both files (loading,
pipeline_file, settings) and the `cameras:` list, each camera known by its name (cameras). This module names what
the rest of the app imports."""

from app.config.camera import CameraConfig, LineConfig, MotionConfig, ReconnectConfig, ZoneConfig
from app.config.cameras import load_cameras
from app.config.device import DeviceConfig
from app.config.files import DEFAULT_CONFIG, PIPELINES_DIR, PROJECT_DIR, pipeline_names
from app.config.loading import load_device, load_settings
from app.config.outputs import (HttpConfig, JsonlConfig, MqttConfig, SnapshotsConfig, WebhooksConfig,
                                is_loopback)
from app.config.pipeline import (LANE_STAGES, OUTPUT_BLOCKS, PIPELINE_KEYS, REQUIRED_STAGES, OverlayParams,
                                 PipelineConfig, PostprocessParams, PreprocessParams, PublishParams, TrackParams)
from app.config.references import secret_warnings
from app.config.robot import UdpConfig, ZmqConfig
from app.config.settings import Settings

__all__ = [
    "DEFAULT_CONFIG", "LANE_STAGES", "OUTPUT_BLOCKS", "PIPELINES_DIR", "PIPELINE_KEYS", "PROJECT_DIR",
    "REQUIRED_STAGES", "CameraConfig", "DeviceConfig", "HttpConfig",
    "JsonlConfig", "LineConfig", "MotionConfig", "MqttConfig", "OverlayParams", "PipelineConfig",
    "PostprocessParams", "PreprocessParams", "PublishParams", "ReconnectConfig", "Settings", "SnapshotsConfig",
    "TrackParams", "UdpConfig", "WebhooksConfig", "ZmqConfig", "ZoneConfig", "is_loopback",
    "load_cameras", "load_device", "load_settings", "pipeline_names", "secret_warnings",
]
