"""`cameras:`: each camera of config.yaml's list made the settings of a run of its own, known by its name. Its
pipeline and accelerator, its MQTT client id and its HTTP port come from its entry and its name, never from its
place in the list, so reordering the list changes nothing a client sees.

A camera's HTTP port is the one its entry gives (`http: {port: N}`). Otherwise a lone camera keeps `http.port`,
and each of several gets `http.port` plus an offset from 0 to PORT_SPAN - 1 that its name alone decides (CRC-32 of
the name: the same on every run and machine, whatever the order or the other cameras). With HTTP on, two cameras
on one port, or a port beyond 65535, are refused with the fix."""

from __future__ import annotations

import zlib
from itertools import chain
from pathlib import Path

from app.config.camera import CameraEntry
from app.config.device import DeviceConfig
from app.config.files import DEFAULT_CONFIG, pipeline_path
from app.config.loading import load_settings, read_device
from app.config.overrides import split_overrides
from app.config.pipeline_file import read_pipeline
from app.config.problems import Problems
from app.config.settings import Settings
from app.errors import ConfigError

#: the ports derived from names lie in http.port .. http.port + PORT_SPAN - 1 (8080 to 9079 by default)
PORT_SPAN = 1000
HIGHEST_PORT = 65535


def port_from_name(base: int, name: str) -> int:
    """`base` plus the offset the name decides; 0 (any free port) stays 0."""
    return base + zlib.crc32(name.encode()) % PORT_SPAN if base else 0


def camera_ports(device: DeviceConfig) -> dict[str, int]:
    """Each camera's HTTP port, by its name: its own, or `http.port` for a lone camera, or derived from its name."""
    base, lone = device.http.port, len(device.cameras) == 1
    return {entry.name: entry.http.port if entry.http else base if lone else port_from_name(base, entry.name)
            for entry in device.cameras}


def check_ports(device: DeviceConfig, ports: dict[str, int], where: str, problems: Problems) -> None:
    """With HTTP on: one problem for each port two or more cameras would listen on, and for each beyond 65535."""
    if not device.http.enabled:
        return
    given = {entry.name for entry in device.cameras if entry.http}
    taken = set(ports.values())
    for port in dict.fromkeys(ports.values()):
        names = [name for name, its in ports.items() if its == port]
        if port > HIGHEST_PORT:
            problems.add(where, "cameras", f"{names[0]}'s HTTP port from its name, {port}, is beyond {HIGHEST_PORT}: "
                         f"lower http.port (to at most {HIGHEST_PORT - PORT_SPAN + 1}) or give {names[0]} its own, "
                         "http: {port: N} in its entry")
        elif port and len(names) > 1:
            derived = [name for name in names if name not in given] or names
            how = ", ".join(f"{name}'s {'given' if name in given else 'from its name'}" for name in names)
            every = "both" if len(names) == 2 else "all"
            problems.add(where, "cameras", f"{', '.join(names[:-1])} and {names[-1]} would {every} listen on HTTP port "
                         f"{port} ({how}): give one of them a port of its own, e.g. http: "
                         f"{{port: {_free_port(port, taken)}}} in {derived[-1]}'s entry")


def _free_port(port: int, taken: set[int]) -> int:
    """The nearest port above `port` (else below) that no camera takes."""
    return next(p for p in chain(range(port + 1, HIGHEST_PORT + 1), range(port - 1, 0, -1)) if p not in taken)


def _own_device(device: DeviceConfig, entry: CameraEntry, port: int) -> DeviceConfig:
    """config.yaml as the one camera `entry` sees it: its camera, accelerator, HTTP port and MQTT client id."""
    http, mqtt = device.http, device.mqtt
    return device.model_copy(update={
        "camera": entry.camera(), "cameras": [], "accelerator": entry.accelerator or device.accelerator,
        "http": http.model_copy(update={"port": port}),
        "mqtt": mqtt.model_copy(update={"client_id": f"{mqtt.client_id}-{entry.name}"[:64]
                                        if mqtt.client_id else ""})})


def load_cameras(pipeline: str, config: str | Path | None = None,
                 overrides: list[str] | tuple[str, ...] = ()) -> list[Settings]:
    """Every camera's settings: each of config.yaml's `cameras:` with its pipeline (`pipeline` when it names none),
    its accelerator and its HTTP port (see the module), or the one `camera:` with `pipeline`. An explicit
    `mqtt.client_id` gets each camera's name appended, so every camera has its own identity on the broker."""
    config_path = Path(config) if config else DEFAULT_CONFIG
    problems = Problems()
    device_overrides, pipeline_overrides, set_keys = split_overrides(overrides, problems)
    device, warnings = read_device(config_path, device_overrides, set_keys, problems)
    if device is None:
        raise ConfigError(problems.lines)
    if not device.cameras:
        return [load_settings(pipeline, config, overrides)]
    ports = camera_ports(device)
    check_ports(device, ports, str(config_path), problems)
    runs = []
    for i, entry in enumerate(device.cameras):
        try:
            pipe_path = pipeline_path(entry.pipeline or pipeline)
        except ConfigError as exc:
            problems.add(str(config_path), f"cameras[{i}].pipeline", str(exc))  # where it is in the file
            continue
        pipeline_config = read_pipeline(pipe_path, pipeline_overrides, set_keys, problems)
        if pipeline_config is not None:
            own = _own_device(device, entry, ports[entry.name])
            runs.append(Settings(own, config_path, pipeline_config, pipe_path, warnings=tuple(warnings)))
    if problems.lines:
        raise ConfigError(problems.lines)
    return runs
