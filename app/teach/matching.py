"""Matching one embedding against the gallery: nearest neighbour by cosine, with a threshold and a margin.

Only the examples taught on the detection's own label are compared (a cat is never "not a bed"). The nearest one
names the detection (or, a `--not` example, says it is not what the detector thought) when its similarity is at
least `threshold` and beats the nearest example of any other name by at least `margin`: two names about as near
are no answer. Nothing near enough is no answer either, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.teach.gallery import Gallery


@dataclass(frozen=True)
class Match:
    """The answer for one embedding: the example's name, its similarity, and whether it is a `--not` example."""

    name: str
    similarity: float
    positive: bool


class Matcher:
    def __init__(self, gallery: Gallery, threshold: float, margin: float) -> None:
        self.threshold, self.margin = threshold, margin
        self._by_label: dict[str, tuple[np.ndarray, list[tuple[str, bool]]]] = {}
        for label in {example.label for example in gallery.examples}:
            examples = [e for e in gallery.examples if e.label == label]
            self._by_label[label] = (np.stack([e.vector for e in examples]), [(e.name, e.positive) for e in examples])
        #: the labels something was taught on
        self.labels = frozenset(self._by_label)

    def match(self, vector: np.ndarray, label: str) -> Match | None:
        """The example `vector` (a unit vector) is near among those of `label`, or None."""
        if label not in self._by_label:
            return None
        vectors, names = self._by_label[label]
        similarities = vectors @ vector
        best = int(np.argmax(similarities))
        name, positive = names[best]
        others = [s for s, (other, _) in zip(similarities, names, strict=True) if other != name]
        runner_up = max(others, default=-1.0)
        if similarities[best] < self.threshold or similarities[best] - runner_up < self.margin:
            return None
        return Match(name, float(similarities[best]), positive)
