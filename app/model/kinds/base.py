"""What a model kind is: the result it produces, how it recognises its tensors, and how its decoder is built.

Each kind is one module of this package with one `Kind`; the registry (`app.model.kinds`) lists them. Decoders
are built once, at start, from the stage's parameters, the loaded model and its labels, and then turn the model's
outputs into results on each frame, in source-frame pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config validates kind names against the registry, so the registry never imports it
    from app.config import PostprocessParams
    from app.frame import Frame
    from app.model.manifest import Labels
    from app.model.runtime import LoadedModel, TensorSpec

#: a kind's decoder: reads the model's outputs, puts its results on the frame
Decoder = Callable[["Frame"], None]
#: what a kind produces, named by the result key it fills (`Frame.detections`, `Frame.classes`, or a key of
#: `Frame.kind_results`); stages and checks that work on boxes ask for DETECTIONS
DETECTIONS, CLASSES = "detections", "classes"


@dataclass(frozen=True)
class Kind:
    """One model kind. `mismatch` checks a declared kind: None when the outputs fit, else what does not, for one
    line. Under `auto` with no kind declared, outputs that fit are taken for this kind unless `doubt` (if given)
    says why they may be another's: a [1, N] output is a classifier's only if it looks like class scores. A kind
    whose outputs always look like another's (an embedding's [1, D]) always doubts, so it is only ever declared."""

    name: str
    produces: str
    mismatch: Callable[[Sequence[TensorSpec]], str | None]
    build: Callable[[PostprocessParams, LoadedModel, Labels], Decoder]
    doubt: Callable[[Sequence[TensorSpec], Labels], str | None] | None = None

    def recognises(self, outputs: Sequence[TensorSpec], labels: Labels) -> bool:
        """Whether `auto` takes these outputs for this kind."""
        return self.mismatch(outputs) is None and (self.doubt is None or self.doubt(outputs, labels) is None)
