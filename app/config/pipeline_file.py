"""Reading a pipeline file: `stages:` in lane order (each stage at most once, the required ones there), the output
lane's blocks beside it, its `--set` overrides, and each validated into its model."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from app.config.base import Strict
from app.config.overrides import Override, apply_pipeline_override
from app.config.pipeline import LANE_STAGES, OUTPUT_BLOCKS, REQUIRED_STAGES, CropParams, PipelineConfig
from app.config.problems import Problems, validate_section
from app.config.references import substitute_env
from app.yaml_file import read_mapping


def read_pipeline(pipe_path: Path, pipeline_overrides: list[Override], set_keys: set[str],
                  problems: Problems) -> PipelineConfig | None:
    """A pipeline file validated, with the `--set` overrides of its keys; None (and problems) when it is wrong."""
    where = str(pipe_path)
    errors_before = len(problems.lines)
    raw = substitute_env(read_mapping(pipe_path), "", where, problems)
    stages = _stage_list(raw.pop("stages", None), where, problems)
    for path, value in pipeline_overrides:
        apply_pipeline_override(raw, stages, path, value, pipe_path, problems)
    description = raw.pop("description", "")
    blocks: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in OUTPUT_BLOCKS:
            known = ["description", "stages", *OUTPUT_BLOCKS]
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"a pipeline file has {', '.join(known)}"
            problems.add(where, str(key), f"unknown key ({hint})")
            continue
        model = _validate_mapping(OUTPUT_BLOCKS[key], value, str(key), where, set_keys, problems)
        if model is not None:
            blocks[key] = model
    for name, params in stages.items():
        model = _validate_mapping(LANE_STAGES[name], params, f"stages.{name}", where, set_keys, problems)
        if model is not None:
            blocks[name] = model
    crop = blocks.get("crop")
    if isinstance(crop, CropParams) and crop.person_down is not None and "track" not in blocks:
        problems.add(where, "stages.crop.person_down", "watches tracked persons: add a track stage before crop")
    if len(problems.lines) > errors_before:
        return None
    return PipelineConfig(pipe_path.stem, str(description or ""), **blocks)


def _validate_mapping(model: type[Strict], value: Any, prefix: str, where: str, set_keys: set[str],
                      problems: Problems) -> Strict | None:
    """A block's parameters validated as `model`; a block that is not a mapping is a problem naming it."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.add(where, prefix, "parameters must be a mapping, e.g. {threads: 2}")
        return None
    return validate_section(model, value, prefix, where, set_keys, problems)


def _stage_list(raw: Any, where: str, problems: Problems) -> dict[str, Any]:
    """`stages:` is a list of one-key mappings (`- preprocess: {resize: stretch}`) in lane order.

    Returns each stage's raw parameters by name; every unknown, misplaced or repeated entry is a problem naming it.
    """
    if not isinstance(raw, list):
        problems.add(where, "stages", "must be a list like `- preprocess: {resize: stretch}`")
        return {}
    order = list(LANE_STAGES)
    stages: dict[str, Any] = {}
    positions: dict[str, int] = {}
    for i, item in enumerate(raw):
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, dict) or len(item) != 1:
            problems.add(where, f"stages[{i}]", "each stage is one `name: {params}` mapping")
            continue
        ((name, params),) = item.items()
        name = str(name)
        if name in OUTPUT_BLOCKS:
            problems.add(where, f"stages[{i}]", f"{name} is a block of the output lane, not a stage: move it out of "
                         f"`stages:` to the top level of the file (`{name}: {{...}}`)")
        elif name not in LANE_STAGES:
            close = difflib.get_close_matches(name, order, n=1)
            hint = f"did you mean {close[0]}?" if close else f"the stages are {', '.join(order)}"
            problems.add(where, f"stages[{i}]", f"unknown stage {name} ({hint})")
        elif name in stages:
            problems.add(where, f"stages[{i}]", f"a second {name} stage (each stage comes at most once)")
        else:
            stages[name] = {} if params is None else params
            positions[name] = i
    for name, i in positions.items():
        before = [other for other in order[:order.index(name)] if positions.get(other, -1) > i]
        if before:
            problems.add(where, f"stages[{i}]", f"{name} must come after {', '.join(before)} "
                         f"(the order is {', '.join(order)})")
    for required in REQUIRED_STAGES:
        if required not in stages:
            problems.add(where, "stages", f"needs a {required} stage")
    return stages
