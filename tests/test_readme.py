"""The README stays true: every configuration key, every stage parameter and every command is documented."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from app.__main__ import COMMANDS
from app.config import STAGE_PARAMS, DeviceConfig

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf key of a config model as a dotted path."""
    found = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += keys(annotation, f"{path}.")
        else:
            found.append(path)
    return found


def test_every_config_yaml_key_is_in_the_readme():
    missing = [key for key in keys(DeviceConfig) if f"`{key}`" not in README]
    assert not missing, f"README.md does not document: {missing}"


def test_every_stage_parameter_is_in_the_readme():
    missing = [f"{stage}.{key}" for stage, params in STAGE_PARAMS.items() for key in keys(params)
               if f"`{key}`" not in README or f"| `{stage}` |" not in README]
    assert not missing, f"README.md does not document: {missing}"


def test_every_command_is_in_the_readme():
    missing = [c for c in COMMANDS if c != "run" and f"python -m app {c}" not in README]
    assert not missing and "python -m app [run]" in README
