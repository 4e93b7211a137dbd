"""`camera.source` (and each `cameras[i].source`) written in config.yaml as a relative path: read relative to the
file's folder, as every path in config.yaml is, so a config works wherever it is kept and whatever the run's
current directory. Done on the file's own values, before `--set` and `--source` are applied: a path given on the
command line stays relative to the current directory, as a shell user expects.

Only a file, a folder or a glob is a path; `auto`, `picamera2`, `pattern`, a device number, `/dev/…` and a URL
(`scheme://…`) are not (the spellings app/sources/__init__.py `build_source` dispatches on)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.config.files import relative_to_config

#: the spellings of `camera.source` that name no file
NOT_PATHS = frozenset({"auto", "picamera2", "pattern"})


def names_a_path(spec: str) -> bool:
    """Whether `camera.source` (stripped) is a file, a folder or a glob rather than a camera, pattern or stream."""
    device = spec.isdigit() or spec.startswith("/dev/")
    return bool(spec) and spec not in NOT_PATHS and not device and "://" not in spec


def resolve_sources(raw: dict[str, Any], config_path: Path) -> None:
    """Make the path sources config.yaml's `camera:` and `cameras:` give relative to its folder (in place)."""
    cameras = raw.get("cameras")
    entries = [raw.get("camera"), *(cameras if isinstance(cameras, list) else [])]
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("source"), str) and names_a_path(entry["source"].strip()):
            entry["source"] = str(relative_to_config(config_path, entry["source"].strip()))
