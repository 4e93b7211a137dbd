"""A segmentation's class areas as Home Assistant sensor states: which classes get one, its value, and when it
has moved enough to be published again.

Pure: the publisher's `Entities` keeps what was published and sends what `area_states` returns. An area is the
class's share of the source frame in percent, 0 to 100 with one decimal (`Segments.shares`), the unit Home
Assistant's `%` sensors show. A mask's edge flickers from frame to frame, so a state goes out only once the area has
moved `AREA_STEP` percentage points from the one published (a count sensor's state likewise changes only with the
count): the published area is never further than that from the frame's.

Which classes: the watched labels (`publish.labels`) the model names, each from the first segmented frame (0.0 while
absent); with every label watched, each class once it covers `AREA_STEP` percent of the frame, as a count sensor
appears with the first detection of its label.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from app.model.kinds.segmentation import Segments

#: percentage points an area must move from the published one before it is published again
AREA_STEP = 1.0


def class_areas(segments: Segments) -> dict[str, float]:
    """Each class's area in percent of the frame, by label: every class the model names (0 when absent), and any
    class id present that it does not name (by its number, as `Segments.as_json` names it)."""
    areas = dict.fromkeys(segments.labels.values(), 0.0)
    for class_id, share in segments.shares.items():
        label = segments.labels.get(class_id, str(class_id))
        areas[label] = areas.get(label, 0.0) + share * 100
    return areas


def area_states(segments: Segments, watched: Collection[str] | None,
                shown: Mapping[str, float]) -> dict[str, float]:
    """The areas to publish now, by label, rounded to one decimal: a watched class's first, and any that moved
    AREA_STEP from the area `shown` (published) for its label. `watched`: publish.labels, None for every label (a
    class not shown yet counts from 0)."""
    states = {}
    for label, area in class_areas(segments).items():
        if watched is not None and label not in watched:
            continue
        previous = shown.get(label, 0.0 if watched is None else None)
        if previous is None or abs(area - previous) >= AREA_STEP:
            states[label] = round(area, 1)
    return states


def area_payload(area: float) -> str:
    """An area as its sensor's state: percent with one decimal, e.g. "68.6"."""
    return f"{area:.1f}"
