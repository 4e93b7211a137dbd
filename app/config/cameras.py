"""`cameras:`: each camera of config.yaml's list made the settings of a run of its own: its pipeline and
accelerator, its HTTP port and its MQTT client id."""

from __future__ import annotations

from pathlib import Path

from app.config.files import DEFAULT_CONFIG, pipeline_path
from app.config.loading import load_settings, read_device
from app.config.overrides import split_overrides
from app.config.pipeline_file import read_pipeline
from app.config.problems import Problems
from app.config.settings import Settings
from app.errors import ConfigError


def load_cameras(pipeline: str, config: str | Path | None = None,
                 overrides: list[str] | tuple[str, ...] = ()) -> list[Settings]:
    """Every camera's settings: each of config.yaml's `cameras:` with its pipeline (`pipeline` when it names none)
    and its accelerator, or the one `camera:` with `pipeline`. Several cameras' HTTP pages listen on `http.port`,
    `http.port + 1`, ... in their order; an explicit `mqtt.client_id` gets each camera's name appended, so every
    camera has its own identity on the broker."""
    config_path = Path(config) if config else DEFAULT_CONFIG
    problems = Problems()
    device_overrides, pipeline_overrides, set_keys = split_overrides(overrides, problems)
    device, warnings = read_device(config_path, device_overrides, set_keys, problems)
    if device is not None and not device.cameras:
        return [load_settings(pipeline, config, overrides)]
    runs = []
    for i, entry in enumerate(device.cameras if device else []):
        try:
            pipe_path = pipeline_path(entry.pipeline or pipeline)
        except ConfigError as exc:
            problems.add(str(config_path), f"cameras[{i}].pipeline", str(exc))
            continue
        pipeline_config = read_pipeline(pipe_path, pipeline_overrides, set_keys, problems)
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
