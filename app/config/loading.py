"""Loading config.yaml and a pipeline file: read, substitute `${…}`, apply `--set`, validate, and raise one
ConfigError listing every problem, each `FILE: key.path: what is wrong (the fix)`."""

from __future__ import annotations

import os
from pathlib import Path

from app.config.device import DeviceConfig
from app.config.files import DEFAULT_CONFIG, pipeline_path, relative_to_config
from app.config.outputs import MqttConfig
from app.config.overrides import Override, apply_override, split_overrides
from app.config.pipeline_file import read_pipeline
from app.config.problems import Problems, validate_section
from app.config.references import secret_warnings, substitute_env
from app.config.sources import resolve_sources
from app.config.settings import DeviceSettings, Settings
from app.errors import ConfigError
from app.yaml_file import read_mapping


def read_device(config_path: Path, overrides: list[Override], set_keys: set[str],
                problems: Problems) -> tuple[DeviceConfig | None, list[str]]:
    """config.yaml validated, and the warnings about it."""
    text = read_mapping(config_path)
    warnings = secret_warnings(config_path, text)
    raw = substitute_env(text, "", str(config_path), problems)
    resolve_sources(raw, config_path)  # the file's own paths; --set and --source stay relative to the current dir
    for path, value in overrides:
        if path[0] == "camera" and raw.get("cameras"):  # camera: and cameras: together would be refused
            problems.add("--set", ".".join(path), f"{config_path} lists cameras:, each with its own keys: set them "
                         "in the file (--source, too, names one camera's source)")
            continue
        apply_override(raw, path, value)
    device = validate_section(DeviceConfig, raw, "", str(config_path), set_keys, problems)
    if device is not None:
        _check_tls_files(device.mqtt, config_path, problems)
    return device, warnings


def _check_tls_files(mqtt: MqttConfig, config_path: Path, problems: Problems) -> None:
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
    problems = Problems()
    device_overrides, pipeline_overrides, set_keys = split_overrides(overrides, problems)
    if pipeline_overrides:
        problems.add("--set", ".".join(pipeline_overrides[0][0]), "this command runs no pipeline")
    device, warnings = read_device(config_path, device_overrides, set_keys, problems)
    if problems.lines or device is None:
        raise ConfigError(problems.lines)
    return DeviceSettings(device, config_path, warnings=tuple(warnings))


def load_settings(pipeline: str, config: str | Path | None = None,
                  overrides: list[str] | tuple[str, ...] = ()) -> Settings:
    """Load, substitute, override and validate both files; raise ConfigError listing every problem."""
    config_path = Path(config) if config else DEFAULT_CONFIG
    pipe_path = pipeline_path(pipeline)
    problems = Problems()
    device_overrides, pipeline_overrides, set_keys = split_overrides(overrides, problems)
    device, warnings = read_device(config_path, device_overrides, set_keys, problems)
    pipeline_config = read_pipeline(pipe_path, pipeline_overrides, set_keys, problems)
    if problems.lines or device is None or pipeline_config is None:
        raise ConfigError(problems.lines)
    return Settings(device, config_path, pipeline_config, pipe_path, warnings=tuple(warnings))
