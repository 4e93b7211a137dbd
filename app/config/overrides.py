"""`--set key.path=VALUE`: the value read as YAML (so numbers and lists are typed), put into config.yaml's data or,
for `stages.*`, `overlay.*` and `publish.*`, into the pipeline file's, before either is validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError

from app.config.pipeline import PIPELINE_KEYS
from app.config.problems import Problems
from app.errors import ConfigError
from app.yaml_file import load_value

#: one `--set`: the key path, split at its dots, and the value
Override = tuple[list[str], Any]


def _parse_override(text: str) -> Override:
    """`KEY=VALUE` as the key path and the value read as YAML; a ConfigError saying the form otherwise."""
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


def apply_override(target: dict, keys: list[str], value: Any) -> None:
    """`value` put at the key path in `target`, making the mappings on the way that are not there."""
    for depth, key in enumerate(keys[:-1]):
        child = target.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {'.'.join(keys)}: {'.'.join(keys[:depth + 1])} is not a mapping in the file")
        target = child
    target[keys[-1]] = value


def split_overrides(overrides: list[str] | tuple[str, ...],
                    problems: Problems) -> tuple[list[Override], list[Override], set[str]]:
    """Parsed `--set` overrides: (config.yaml ones, pipeline-file ones, every key path set)."""
    device: list[Override] = []
    pipeline: list[Override] = []
    keys: set[str] = set()
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


def apply_pipeline_override(raw: dict, stages: dict[str, Any], path: list[str], value: Any, pipe_path: Path,
                            problems: Problems) -> None:
    """One `--set stages.NAME.KEY=V`, `publish.KEY=V` or `overlay.KEY=V` onto the pipeline file's raw data."""
    if path[0] != "stages":
        block = raw.setdefault(path[0], {})
        if isinstance(block, dict):  # otherwise reported when the block is validated
            apply_override(block, path[1:], value)
        return
    if path[1] not in stages:
        names = ", ".join(stages)
        problems.add("--set", ".".join(path), f"no such stage in {pipe_path.name} (its stages: {names})")
    elif isinstance(stages[path[1]], dict):  # otherwise reported below: its parameters are not a mapping
        apply_override(stages[path[1]], path[2:], value)
