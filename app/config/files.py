"""Where the configuration lives: the project's folders, config.yaml, the pipeline files by name, and paths written
in a config file (relative to that file's folder, so a config works wherever it is kept)."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

from app.errors import ConfigError

#: the checkout (or the installed tree): this file is app/config/files.py
PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
DEFAULT_CONFIG = PROJECT_DIR / "config.yaml"
PIPELINES_DIR = PROJECT_DIR / "pipelines"


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


def relative_to_config(config_path: Path, value: str) -> Path:
    """A path written in a config file: absolute (or ~), or relative to the file's folder."""
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else config_path.parent / path
