"""Several cameras in one process (`cameras:` in config.yaml), and the one-camera run as its simplest case.

Each camera is a `Pipeline` of its own: its capture lane, stages, output lane, stats, topics and entities. What
they share is decided here, by the inference lanes they need:
- a camera on the CPU has its own interpreter and inference lane, and `threads: auto` splits the cores between
  the CPU lanes;
- cameras that use one model on one Edge TPU share one interpreter and one inference lane (`SharedInference`),
  which takes the newest frame of each camera in turn, so a camera with a fast source cannot starve the others
  (what Frigate's shared detector queue and Watsor's balanced queue do);
- other models, or a mix of the Edge TPU and the CPU, get lanes of their own.
The first camera that fails stops the others and its failure is raised (systemd restarts the service; a camera
that is only away is waited for inside its pipeline and never fails).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from app.accelerator import ModelChoice, load_choice
from app.config import Settings
from app.metrics import Stats
from app.pipeline import Pipeline, choose_model, inference_threads
from app.publishers.base import Publisher
from app.runtime import LoadedModel

log = logging.getLogger(__name__)

#: how long a shared inference lane with nothing to do waits before looking again (a frame wakes it at once)
IDLE_WAIT_S = 0.05


def lane_groups(choices: list[ModelChoice]) -> list[list[int]]:
    """Which cameras share an inference lane: those whose model file and Edge TPU are the same. A camera on the
    CPU is alone in its group."""
    groups: dict[tuple, list[int]] = {}
    for i, choice in enumerate(choices):
        key = (choice.accelerator, str(choice.path)) if choice.accelerator.startswith("edgetpu") else ("cpu", i)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


class SharedInference:
    """One inference lane for several cameras' pipelines that share one loaded model: in each round it takes the
    frame waiting at each camera (the newest, on a live camera) and infers it, then waits for the next frame of
    any of them."""

    def __init__(self, pipelines: list[Pipeline], arrived: threading.Event) -> None:
        self.pipelines = pipelines
        self._arrived = arrived

    def run(self) -> None:
        active = list(self.pipelines)
        try:
            while active:
                self._arrived.clear()
                served = False
                for pipeline in list(active):
                    frame, ended = pipeline.next_frame()
                    if ended:
                        active.remove(pipeline)
                        pipeline.finish_inference()
                    elif frame is not None:
                        pipeline.infer(frame)
                        served = True
                if not served:
                    self._arrived.wait(IDLE_WAIT_S)
        except BaseException as exc:  # every camera it served stops, and raises it
            for pipeline in active:
                pipeline.fail(exc)
        finally:
            for pipeline in active:
                pipeline.finish_inference()


class Cameras:
    """Every camera of one configuration, run together: `run()`, and `stop()` from a signal handler or a thread."""

    def __init__(self, runs: list[Settings], publishers: Callable[[Settings], list[Publisher]]) -> None:
        choices = [choose_model(settings) for settings in runs]
        groups = lane_groups(choices)
        cpu_lanes = sum(1 for group in groups if choices[group[0]].accelerator == "cpu")
        self.pipelines: list[Pipeline | None] = [None] * len(runs)
        self.lanes: list[SharedInference] = []
        for group in groups:
            if len(group) == 1:
                (i,) = group
                self.pipelines[i] = Pipeline(runs[i], publishers(runs[i]), lanes=max(1, cpu_lanes))
                continue
            self._share(group, runs, choices[group[0]], publishers, cpu_lanes)
        self._failure: BaseException | None = None

    def _share(self, group: list[int], runs: list[Settings], choice: ModelChoice,
               publishers: Callable[[Settings], list[Publisher]], cpu_lanes: int) -> None:
        """One model on one Edge TPU for the cameras in `group`, and one lane for them; when the TPU does not answer
        and `auto` falls back to the CPU, each camera gets a CPU model and lane of its own instead."""
        first = runs[group[0]]
        lanes = cpu_lanes + len(group)  # the CPU lanes there are if these cameras fall back to the CPU
        model, chosen = load_choice(choice, inference_threads(first, lanes))
        if chosen.accelerator == "cpu":
            loaded: tuple[LoadedModel, ModelChoice] = (model, chosen)
            self.pipelines[group[0]] = Pipeline(first, publishers(first), loaded=loaded, lanes=lanes)
            for i in group[1:]:
                self.pipelines[i] = Pipeline(runs[i], publishers(runs[i]), lanes=lanes)
            return
        arrived = threading.Event()
        shared = [Pipeline(runs[i], publishers(runs[i]), loaded=(model, chosen), shared_lane=arrived) for i in group]
        for i, pipeline in zip(group, shared, strict=True):
            self.pipelines[i] = pipeline
        log.info("cameras %s share %s on %s, one inference lane", ", ".join(p.settings.device.camera.name
                                                                            for p in shared),
                 chosen.path.name, chosen.accelerator)
        self.lanes.append(SharedInference(shared, arrived))

    @property
    def running(self) -> list[Pipeline]:
        return [pipeline for pipeline in self.pipelines if pipeline is not None]

    @property
    def stats(self) -> list[Stats]:
        return [pipeline.stats for pipeline in self.running]

    def stop(self) -> None:
        for pipeline in self.running:
            pipeline.stop()

    def run(self, max_frames: int | None = None) -> list[Stats]:
        """Run every camera until all have ended (sources ended, `max_frames` each, or `stop()`); raise the first
        failure, after stopping the others."""
        threads = [threading.Thread(target=self._run_one, args=(pipeline, max_frames), daemon=True,
                                    name=f"camera-{pipeline.settings.device.camera.name}")
                   for pipeline in self.running]
        threads += [threading.Thread(target=lane.run, name=f"inference-shared-{n}", daemon=True)
                    for n, lane in enumerate(self.lanes)]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)
        if self._failure is not None:
            raise self._failure
        return self.stats

    def _run_one(self, pipeline: Pipeline, max_frames: int | None) -> None:
        try:
            pipeline.run(max_frames)
        except BaseException as exc:
            if self._failure is None:
                self._failure = exc
                log.error("camera %s failed (%s): stopping every camera", pipeline.settings.device.camera.name, exc)
            self.stop()
