"""The model runner: the object an inference lane holds (DESIGN.md: who owns what).

It owns the loaded model, its labels, the accelerator chosen for it and why, the CPU model `auto` keeps in
reserve if the Edge TPU fails mid-run, and the check of the TPU's speed. One runner serves every camera of its
lane (cameras sharing one model on one Edge TPU share it), so a fallback happens once, for all of them; a camera's
stages see it through `model` and start again on the CPU model.
"""

from __future__ import annotations

import logging
import os

from app.config import Settings
from app.errors import ModelError
from app.model.accelerator import ModelChoice, auto_threads, choose, load_choice, slow_tpu_warning
from app.model.fit import check_fit
from app.model.manifest import Labels, resolve_labels, resolve_model
from app.model.runtime import LoadedModel, load_model

log = logging.getLogger(__name__)


def inference_threads(settings: Settings, lanes: int = 1) -> int:
    """`stages.inference.threads`, with `auto` decided for this machine and the `lanes` CPU inference lanes that
    share its cores (several cameras: each its share, at least one), and logged."""
    threads = settings.pipeline.inference.threads
    if threads != "auto":
        return threads
    device = settings.device
    outputs_on = any(output.enabled for output in (device.jsonl, device.mqtt, device.http, device.snapshots,
                                                   device.webhooks))
    cores = len(os.sched_getaffinity(0))
    count, why = auto_threads(max(1, cores // lanes), outputs_on)
    log.info("threads auto: %d (%s%s)", count, f"{cores} cores for {lanes} cameras, each " if lanes > 1 else "", why)
    return count


def choose_model(settings: Settings) -> ModelChoice:
    """The inference stage's model file and the accelerator chosen for it (not loaded yet)."""
    params = settings.pipeline.inference
    path = resolve_model(params.model, settings.models_dir, settings.config_path)
    return choose(params.accelerator or settings.device.accelerator, params.model, path, settings.models_dir)


class ModelRunner:
    """A loaded model with its labels and accelerator choice; `fall_back` and `speed_warning` for the lane."""

    def __init__(self, model: LoadedModel, labels: Labels, choice: ModelChoice) -> None:
        self.model = model
        self.labels = labels
        self.choice = choice

    @classmethod
    def load(cls, settings: Settings, lanes: int = 1, choice: ModelChoice | None = None) -> ModelRunner:
        """The model of `settings`' inference stage on the accelerator chosen for it (`choice`, when the caller
        chose already), and its labels. `lanes`: the CPU inference lanes of this process, which share the cores."""
        params = settings.pipeline.inference
        model, chosen = load_choice(choice or choose_model(settings), inference_threads(settings, lanes))
        path = resolve_model(params.model, settings.models_dir, settings.config_path)
        labels = resolve_labels(params.labels, params.model, settings.models_dir, path, settings.config_path)
        return cls(model, labels, chosen)

    def fit_warnings(self, settings: Settings) -> list[str]:
        """How the model fits one camera's pipeline file (logged here), each naming that file."""
        warnings = [f"{settings.pipeline_path}: {warning}"
                    for warning in check_fit(settings.pipeline, self.model, self.labels, settings.device.privacy)]
        for warning in warnings:
            log.warning("%s", warning)
        return warnings

    def fall_back(self, failure: ModelError) -> bool:
        """The model raised `failure` (the Edge TPU was unplugged): switch to the CPU model `auto` kept in reserve,
        once for every camera of the lane (in the lane's thread; the others see `model` change before their next
        frame). False when there is none (the failure is the caller's)."""
        fallback = self.choice.fallback
        if fallback is None:
            return False
        log.warning("Edge TPU failed (%s); switching to the CPU model %s", failure, fallback.name)
        self.model = load_model(fallback, "cpu", self.model.threads)
        self.choice = ModelChoice(fallback, "cpu", "the Edge TPU failed mid-run")
        return True

    def speed_warning(self, median_ms: float | None) -> str | None:
        """A warning (logged) when the Edge TPU answers several times slower than it should."""
        warning = slow_tpu_warning(self.choice, median_ms)
        if warning:
            log.warning("%s", warning)
        return warning
