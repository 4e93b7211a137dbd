"""Every problem of one load, each one line `FILE: key.path: what is wrong (the fix)`, collected so `validate` shows
them all at once; and validating a section into its model, with the closest valid key suggested for an unknown
one (a misspelt key silently ignored is a camera that does the wrong thing for months)."""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from app.config.base import Strict
from app.redact import mask_credentials

Section = TypeVar("Section", bound=Strict)


@dataclass
class Problems:
    """Collects every problem of one load so `validate` can show them all at once."""

    lines: list[str] = field(default_factory=list)

    def add(self, where: str, path: str, message: str) -> None:
        self.lines.append(f"{where}: {path}: {message}" if path else f"{where}: {message}")


def _section_type(annotation: Any) -> Any:
    """The model a field holds: a list's item, an optional's value, or the annotation itself."""
    if typing.get_origin(annotation) is list:
        (annotation,) = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [arg for arg in typing.get_args(annotation) if isinstance(arg, type) and issubclass(arg, BaseModel)]
        annotation = models[0] if len(models) == 1 else None
    return annotation


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The config model that holds the key at `loc` (for suggesting the closest valid key)."""
    for part in loc:
        if str(part).isdigit():  # an item of the list the previous key holds (cameras.0)
            continue
        info = model.model_fields.get(str(part))
        annotation = _section_type(getattr(info, "annotation", None))
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def validate_section(model: type[Section], data: dict, prefix: str, where: str, set_keys: set[str],
                     problems: Problems) -> Section | None:
    """`data` as `model`; None, and a problem for each mistake (from `--set` when a `--set` key made it)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(str(p) for p in error["loc"])
            path = ".".join((prefix, *loc) if prefix else loc)
            source = "--set" if path in set_keys else where
            if error["type"] == "extra_forbidden":
                problems.add(source, path, f"unknown key ({_closest_key(model, loc, path)})")
            else:
                shown = mask_credentials(repr(error["input"]))  # a URL given where it does not belong
                shown = shown if len(shown) <= 60 else shown[:60] + "…"
                got = f" (got {shown})" if error["type"] != "missing" else ""
                message = error["msg"].removeprefix("Value error, ")
                problems.add(source, path, f"{message}{got}")
        return None


def _closest_key(model: type[BaseModel], loc: tuple[str, ...], path: str) -> str:
    """The hint for an unknown key: the closest valid one, else the valid ones."""
    parent = _model_at(model, loc[:-1])
    close = difflib.get_close_matches(loc[-1], list(parent.model_fields) if parent else [], n=1)
    parent_path = path.rpartition(".")[0]
    if close:
        return f"did you mean {'.'.join(filter(None, (parent_path, close[0])))}?"
    return f"valid keys: {', '.join(parent.model_fields)}" if parent else "remove it"
