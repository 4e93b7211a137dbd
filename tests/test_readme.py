"""The README documents every configuration key, pipeline parameter and command, each in its own table row."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from app.cli import COMMANDS
from app.config import LANE_STAGES, OUTPUT_BLOCKS, DeviceConfig

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


def table_rows(heading: str) -> list[list[str]]:
    """The cells of every row of the first table after `heading`, each cell's `code` spans only."""
    section = README[README.index(heading):]
    rows, in_code = [], False
    for line in section.splitlines()[1:]:
        in_code ^= line.startswith("```")
        if line.startswith("#") and not in_code:
            break
        if line.startswith("| `"):
            rows.append([" ".join(re.findall(r"`([^`]*)`", cell)) for cell in line.strip("|").split(" | ")])
    return rows


def test_every_config_yaml_key_has_a_row():
    documented = {key for row in table_rows("### config.yaml") for key in row[0].split()}
    missing = [key for key in keys(DeviceConfig) if key not in documented]
    assert not missing, f"README.md does not document: {missing}"


def test_every_pipeline_parameter_has_a_row_of_its_block():
    documented = {(row[0], key) for row in table_rows("### Pipeline files") for key in row[1].split()}
    expected = [(block, key) for block, params in {**LANE_STAGES, **OUTPUT_BLOCKS}.items() for key in keys(params)]
    missing = [f"{block}.{key}" for block, key in expected if (block, key) not in documented]
    assert not missing, f"README.md does not document: {missing}"


def test_the_table_readers_see_a_deleted_row():
    """The checks above would fail if a row went missing: the parsed tables really hold the rows."""
    filter_rows = [row for row in table_rows("### Pipeline files") if row[0] == "filter"]
    assert [row[1] for row in filter_rows] == ["labels", "min_score", "min_area"]


def test_every_command_is_in_the_readme():
    missing = [c for c in COMMANDS if c != "run" and f"python -m app {c}" not in README]
    assert not missing and "python -m app [run]" in README
