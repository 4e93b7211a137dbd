"""Which kind decodes a model: the declared kind decides, and the model's tensors only check it.

The kind is declared by the pipeline file (`postprocess.kind`), else by the model manifest's entry for the
model's file. A declared kind the outputs do not fit is refused in one line that names the outputs and what the
kind needs. With nothing declared, `auto` guesses from the tensors, but only what they plainly say: outputs that
could be another kind's (a [1, D] embedding is not a classifier) are refused with a line that says to declare it.
"""

from __future__ import annotations

from app.errors import ConfigError
from app.model.kinds import AUTO, KINDS
from app.model.kinds.base import Kind
from app.model.manifest import Labels, declared_kind
from app.model.runtime import LoadedModel

KEY = "stages.postprocess.kind"


def choose_kind(requested: str, model: LoadedModel, labels: Labels) -> Kind:
    """The kind that decodes `model`: `requested` (the pipeline's `postprocess.kind`), else the manifest's, else
    the one `auto` recognises; ConfigError naming the model's outputs when none fits."""
    if requested != AUTO:
        return _checked(KINDS[requested], "", model)
    declared = declared_kind(model.path)
    if declared is not None:
        return _checked(KINDS[declared], ", the kind the model manifest gives it", model)
    return _guessed(model, labels)


def _shapes(model: LoadedModel) -> str:
    return ", ".join(str(list(o.shape)) for o in model.outputs)


def _checked(kind: Kind, declared_by: str, model: LoadedModel) -> Kind:
    """The declared kind, if the outputs fit it."""
    problem = kind.mismatch(model.outputs)
    if problem is None:
        return kind
    fitting = [other.name for other in KINDS.values() if other.mismatch(model.outputs) is None]
    looks = f"; it looks like {' or '.join(fitting)}" if fitting else ""
    raise ConfigError(f"{KEY}: {model.path.name} is not {kind.name}{declared_by} (its outputs: {_shapes(model)}; "
                      f"{problem}{looks})")


def _guessed(model: LoadedModel, labels: Labels) -> Kind:
    """The one kind whose outputs these plainly are, for `auto` with nothing declared."""
    recognised = [kind for kind in KINDS.values() if kind.recognises(model.outputs, labels)]
    if len(recognised) == 1:
        return recognised[0]
    doubts = [f"; as {kind.name}, {kind.doubt(model.outputs, labels)}" for kind in KINDS.values()
              if kind.doubt is not None and kind.mismatch(model.outputs) is None and kind not in recognised]
    raise ConfigError(f"{KEY}: auto cannot tell what {model.path.name} is (its outputs: {_shapes(model)}"
                      f"{''.join(doubts)}): declare its kind in {KEY}, one of {', '.join(KINDS)}")
