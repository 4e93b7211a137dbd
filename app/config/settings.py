"""What loading gives the rest of the app: the validated config.yaml (and pipeline file) with the paths they came
from, so paths written in them resolve against their own folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.config.device import DeviceConfig
from app.config.files import relative_to_config
from app.config.pipeline import PipelineConfig

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
