"""Does a model fit its pipeline: the kind that decodes it (`app.model.kinds`), and the labels the pipeline watches.

A model that cannot give what the pipeline consumes (a classifier under a pipeline that filters or counts
detections) is a configuration error with the model's output shapes. Watched labels the model cannot produce
(`stages.filter.labels`, `publish.labels`, `publish.snapshots.labels`) are a warning naming the model's labels:
the run is valid, but its events would never fire. A segmentation model's `publish.labels` choose its area sensors
(MQTT), so they fit it too. So is privacy on a model that gives neither boxes nor segments
(a classifier): privacy fails closed, so no image would ever leave. `run` checks at start and `validate` checks
every pipeline whose model is present.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app.config import PipelineConfig, Settings
from app.errors import ConfigError, SmartcamError
from app.config.privacy import PrivacyConfig
from app.model.kinds.base import DETECTIONS
from app.model.kinds.segmentation import SEGMENTS
from app.model.kinds.choose import choose_kind
from app.model.manifest import Labels, resolve_labels, resolve_model
from app.model.runtime import LoadedModel, load_model

log = logging.getLogger(__name__)
#: how many of a model's labels a warning lists
SHOWN_LABELS = 12


def check_fit(pipeline: PipelineConfig, model: LoadedModel, labels: Labels,
              privacy: PrivacyConfig | None = None) -> list[str]:
    """Warnings about watched labels and `privacy`; ConfigError when the model's outputs cannot be what the
    pipeline needs."""
    kind = choose_kind(pipeline.postprocess.kind, model, labels)
    watched = pipeline.watched_labels()
    if kind.produces != DETECTIONS:
        needs = ["stages.filter"] if pipeline.filter else []
        fits = {"publish.labels"} if kind.produces == SEGMENTS else set()  # the watched classes' areas
        needs += [key for key in watched if not key.startswith("stages.filter") and key not in fits]
        if needs:
            shapes = ", ".join(str(list(o.shape)) for o in model.outputs)
            raise ConfigError(f"{', '.join(needs)}: work on detections, but {model.path.name} is a {kind.name} (its "
                              f"outputs: {shapes}): give a detector, or remove {' and '.join(needs)}")
    known = set(labels.names.values())
    warnings = []
    for key, names in watched.items():
        missing = [name for name in names if name not in known]
        if missing:
            warnings.append(f"{key}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not among the "
                            f"labels of {model.path.name}, so {'it' if len(missing) == 1 else 'they'} never "
                            f"match ({describe(labels)})")
    if privacy is not None and privacy.enabled and kind.produces not in (DETECTIONS, SEGMENTS):
        warnings.append(f"privacy.labels: {model.path.name} is a {kind.name}, which gives neither boxes nor segments "
                        "to mask, so no image of this pipeline leaves the device (privacy fails closed): use a "
                        "detector or a segmentation model, or turn privacy off")
    return warnings


def describe(labels: Labels) -> str:
    """The model's labels for a message: the first few, how many, and where they came from."""
    if not labels.names:
        return "it has no labels: results carry class ids; give stages.inference.labels"
    names = list(labels.names.values())
    shown = ", ".join(names[:SHOWN_LABELS]) + (f", … {len(names) - SHOWN_LABELS} more" if len(names) > SHOWN_LABELS
                                               else "")
    return f"its labels, from {labels.origin}: {shown}"


def validate_fit(settings: Settings) -> list[str]:
    """`check_fit` for `validate`, on the CPU, when the pipeline's model is present (else nothing to check)."""
    inference = settings.pipeline.inference
    try:
        path: Path = resolve_model(inference.model, settings.models_dir, settings.config_path)
        model = load_model(path, "cpu", 1)
    except SmartcamError as exc:  # not downloaded, or only runs on an Edge TPU: `run` checks it at start
        log.debug("not checking the model of %s: %s", settings.pipeline.name, exc)
        return []
    labels = resolve_labels(inference.labels, inference.model, settings.models_dir, path, settings.config_path)
    return [f"{settings.pipeline_path}: {warning}"
            for warning in check_fit(settings.pipeline, model, labels, settings.device.privacy)]
