"""Several cameras in one process (`cameras:` in config.yaml), and the one-camera run as its simplest case.

Each camera is a `Pipeline` of its own: its capture lane, stages, output lane, stats, topics and entities. The
model runners and inference lanes (app.inference_lane) they need are built here, the one place:
- a camera on the CPU has its own runner (interpreter) and lane, and `threads: auto` splits the cores between
  the CPU lanes;
- cameras that use one model (and labels) on one Edge TPU share one runner and one lane, which takes the newest
  frame of each camera in turn;
- other models, or a mix of the Edge TPU and the CPU, get lanes of their own.

A camera's failure is its own. A camera that is only away is waited for inside its pipeline and never fails. A
camera whose pipeline raises (a stage, an output, a source that gives up) is stopped, logged once with its name
and the one-line reason, and its `Stats.state` says so (systemd's STATUS names it; /api/stats and MQTT stats
carry `state`, `failures` and `last_failure`), while the other cameras run on. What comes next is chosen for a
device left alone for months, where a camera that stays dead until someone looks is the worst outcome and one
camera's fault must never silence the others:
- a live camera (a device, a stream) is rebuilt from its settings after a backoff (RESTART_FIRST_S, doubling
  for failures in a row, at most RESTART_MAX_S), with the same Stats, so its counts go on. It rejoins the lane
  its neighbours on one Edge TPU still use; when every camera of its lane is gone (the model or the TPU may be at
  fault), the lane is built anew with the model loaded again;
- a camera reading a file or images stays failed (rebuilding it would process its file again from the start);
- when the camera that failed was the last one running (every other one ended or failed too), nothing is
  rebuilt: the run ends, exit 1, and systemd restarts the whole process, the most thorough reset there is.
  A single camera is that case: its failure is raised, as it always was.
So a run in which a camera failed for good never exits 0, even when the others ended normally. A ConfigError
(the files are wrong, exit 2) stays fatal for the whole run: found while building, or raised by a camera's run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from app.config import Settings
from app.errors import ConfigError, SmartcamError
from app.inference_lane import InferenceLane, LaneEnded
from app.metrics import ENDED, FAILED, RESTARTING, RUNNING, Stats
from app.model.accelerator import ModelChoice
from app.model.runner import ModelRunner, choose_model
from app.outputs.base import Publisher
from app.pipeline import Pipeline
from app.redact import mask_credentials
from app.reload import MODEL_CHANGED, restart_reason

log = logging.getLogger(__name__)

#: a failed live camera is rebuilt after RESTART_FIRST_S, doubled for each failure in a row up to RESTART_MAX_S; a
#: run that lasted RESTART_MAX_S before failing starts the count again
RESTART_FIRST_S = 1.0
RESTART_MAX_S = 60.0


class CamerasFailed(SmartcamError):
    """Cameras that failed for good in a run of several: one line each (exit 1, which systemd restarts)."""


def lane_groups(choices: list[ModelChoice], labels: list[object] | None = None) -> list[list[int]]:
    """Which cameras share an inference lane: those whose model file, labels (`labels`, each camera's setting)
    and Edge TPU are the same. A camera on the CPU is alone in its group."""
    groups: dict[tuple, list[int]] = {}
    for i, choice in enumerate(choices):
        key = ((choice.accelerator, str(choice.path), repr(labels[i] if labels else None))
               if choice.accelerator.startswith("edgetpu") else ("cpu", i))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


class Cameras:
    """Every camera of one configuration, run together: `run()`, and `stop()` from a signal handler or a thread."""

    def __init__(self, runs: list[Settings], publishers: Callable[[Settings], list[Publisher]]) -> None:
        self.runs = runs
        self._publishers = publishers
        self._choices = [choose_model(settings) for settings in runs]
        groups = lane_groups(self._choices, [settings.pipeline.inference.labels for settings in runs])
        cpu_lanes = sum(1 for group in groups if self._choices[group[0]].accelerator == "cpu")
        self.pipelines: list[Pipeline | None] = [None] * len(runs)
        self.lanes: list[InferenceLane] = []
        #: the lane each camera is on, and the CPU lanes its cores are split for
        self._lane_of: list[InferenceLane | None] = [None] * len(runs)
        self._cpu_lanes = [max(1, cpu_lanes)] * len(runs)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._fatal: BaseException | None = None
        self._errors: dict[int, BaseException] = {}
        #: cameras stopped to be restarted by a reload, and why
        self._restarts: dict[int, str] = {}
        for group in groups:
            self._build_lane(group, cpu_lanes if len(group) == 1 else cpu_lanes + len(group))

    def _build_lane(self, group: list[int], lanes: int, stats: list[Stats] | None = None) -> None:
        """The runner and lane of the cameras in `group`, and their pipelines; `lanes`: the CPU lanes there are if
        they run on the CPU. When the Edge TPU of a group does not answer and `auto` falls back to the CPU, each
        camera gets a CPU runner and lane of its own instead. `stats`: the cameras' own, when they are rebuilt."""
        kept: list[Stats | None] = list(stats) if stats else [None] * len(group)
        runner = ModelRunner.load(self.runs[group[0]], max(1, lanes), self._choices[group[0]])
        shared = runner.choice.accelerator != "cpu"
        lane = None
        for n, i in enumerate(group):
            if lane is None or not shared:
                lane = InferenceLane(runner if n == 0 else ModelRunner.load(self.runs[i], lanes, runner.choice),
                                     f"inference-{self.runs[i].device.camera.name}" if not shared
                                     else f"inference-shared-{len(self.lanes)}")
                self.lanes.append(lane)
            if not shared:
                self._cpu_lanes[i] = max(1, lanes)
            self._lane_of[i] = lane
            self.pipelines[i] = Pipeline(self.runs[i], self._publishers(self.runs[i]), lane=lane, stats=kept[n])
        if shared and len(group) > 1:
            log.info("cameras %s share %s on %s, one inference lane",
                     ", ".join(self.runs[i].device.camera.name for i in group), runner.choice.path.name,
                     runner.choice.accelerator)

    @property
    def running(self) -> list[Pipeline]:
        return [pipeline for pipeline in self.pipelines if pipeline is not None]

    @property
    def stats(self) -> list[Stats]:
        """Each camera's Stats, one object for the whole run (a camera rebuilt after a failure keeps its own)."""
        return [pipeline.stats for pipeline in self.running]

    def stop(self) -> None:
        """Stop every camera, and rebuild none (never blocks: a signal handler calls it)."""
        self._stopping.set()
        for pipeline in self.running:
            pipeline.stop()

    def reload(self, runs: list[Settings]) -> str:
        """Apply the files read again (`runs`) to the running cameras, matched by name: live where a camera can
        take the change, else by restarting that camera alone (app.reload). Cameras added or removed are refused
        (ConfigError), as a restart applies them. Returns what was done, for the log."""
        names, given = {s.device.camera.name for s in self.runs}, {s.device.camera.name for s in runs}
        if names != given:
            raise ConfigError(f"the cameras changed ({', '.join(sorted(names ^ given))} added or removed): "
                              "restart smartcam to apply that (systemctl restart smartcam)")
        by_name = {settings.device.camera.name: settings for settings in runs}
        for old in self.runs:  # a model that is not there is refused now, not found missing by the restart
            new = by_name[old.device.camera.name]
            if restart_reason(old, new) == MODEL_CHANGED:
                choose_model(new)
        done = []
        with self._lock:
            for i, old in enumerate(self.runs):
                name = old.device.camera.name
                self.runs[i] = new = by_name[name]  # a camera restarting or rebuilt later is built from these
                pipeline = self.pipelines[i]
                if pipeline is None or pipeline.stats.state != RUNNING:
                    continue
                if reason := restart_reason(old, new):
                    self._restarts[i] = reason
                    pipeline.stop()
                    done.append(f"camera {name} restarts ({reason})")
                else:
                    pipeline.reconfigure(new, self._publishers(new))
                    done.append(f"camera {name} changed live")
        return "; ".join(done) or "no camera is running"

    def run(self, max_frames: int | None = None) -> list[Stats]:
        """Run every camera until all have ended (sources ended, `max_frames` each, or `stop()`), rebuilding failed
        ones as the module says; raise a ConfigError any of them raised, the one camera's failure, or
        CamerasFailed naming the cameras that failed for good."""
        threads = [threading.Thread(target=self._keep_running, args=(i, max_frames), daemon=True,
                                    name=f"camera-{settings.device.camera.name}")
                   for i, settings in enumerate(self.runs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)
        if self._fatal is not None:
            raise self._fatal
        failed = [i for i, stats in enumerate(self.stats) if stats.state == FAILED]
        if len(self.runs) == 1 and failed:
            raise self._errors[0]
        if failed:
            raise CamerasFailed("\n".join(f"camera {self.runs[i].device.camera.name} failed: "
                                           f"{self.stats[i].last_failure}" for i in failed))
        return self.stats

    def _keep_running(self, i: int, max_frames: int | None) -> None:
        """Run camera `i` until it ends; after a failure, rebuild it after a backoff or leave it failed."""
        pipeline = self.pipelines[i]
        in_a_row = 0
        while pipeline is not None:
            if self._stopping.is_set():  # a stop while it was rebuilt
                pipeline.stop()
            began = time.monotonic()
            try:
                pipeline.run(max_frames)
            except ConfigError as exc:  # the files are wrong: running on cannot fix that
                self._fatal = self._fatal or exc
                pipeline.stats.state, pipeline.stats.last_failure = FAILED, str(exc)
                self.stop()
                return
            except BaseException as exc:
                in_a_row = 1 if time.monotonic() - began >= RESTART_MAX_S else in_a_row + 1
                pipeline = self._after_failure(i, pipeline, exc, in_a_row)
                continue
            reason = self._restarts.pop(i, None)
            if reason is None or self._stopping.is_set():
                pipeline.stats.state = ENDED
                return
            pipeline = self._restart(i, pipeline, reason)

    def _restart(self, i: int, stopped: Pipeline, reason: str) -> Pipeline | None:
        """Camera `i`, stopped by a reload for `reason`, built again from its new settings (a failure to build it
        is a camera failure like any other)."""
        log.info("camera %s restarts: %s", self.runs[i].device.camera.name, reason)
        try:
            return self._rebuild(i, stopped.stats, new_lane=reason == MODEL_CHANGED)
        except BaseException as exc:
            return self._after_failure(i, stopped, exc, 1)

    def _after_failure(self, i: int, failed: Pipeline, exc: BaseException, in_a_row: int) -> Pipeline | None:
        """Camera `i` failed with `exc`: the camera rebuilt after its backoff, or None when it stays failed."""
        while (delay := self._failed(i, failed, exc, in_a_row)) is not None:
            if self._stopping.wait(delay):  # stopped while it waited: the run was asked to end, and so it does
                failed.stats.state = ENDED
                return None
            try:
                rebuilt = self._rebuild(i, failed.stats)
                if rebuilt is not None:
                    log.info("camera %s rebuilt after %d failures", self.runs[i].device.camera.name,
                             failed.stats.failures)
                return rebuilt
            except BaseException as again:  # rebuilding failed too (the TPU still gone): later, again
                exc, in_a_row = again, in_a_row + 1
        failed.stats.state = FAILED
        return None

    def _failed(self, i: int, pipeline: Pipeline, exc: BaseException, in_a_row: int) -> float | None:
        """Say once that camera `i` failed, and return the backoff after which it is rebuilt, or None when it stays
        failed: it reads a file, or no other camera is running (then every camera stops and the run ends)."""
        name, stats = self.runs[i].device.camera.name, pipeline.stats
        reason = mask_credentials(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
        with self._lock:
            self._errors[i] = exc
            stats.failures += 1
            stats.last_failure = reason
            others = any(other.state == RUNNING for j, other in enumerate(self.stats) if j != i)
            live = pipeline.source.live
            delay = (None if not (live and others) or self._stopping.is_set()
                     else min(RESTART_MAX_S, RESTART_FIRST_S * 2 ** (in_a_row - 1)))
            stats.state = FAILED if delay is None else RESTARTING
        then = (f"rebuilt in {delay:g} s" if delay is not None else "it reads a file: it stays failed" if not live
                else "no camera is left running: the run ends")
        log.error("camera %s failed: %s; %s", name, reason, then, exc_info=log.isEnabledFor(logging.DEBUG))
        if delay is None and live:
            self.stop()
        return delay

    def _rebuild(self, i: int, stats: Stats, new_lane: bool = False) -> Pipeline | None:
        """Camera `i` built again from its settings with its own Stats: back on the Edge TPU lane its neighbours
        still use, or on a lane built anew (its model loaded again) when none is left on it, when it was alone on
        the CPU, or when `new_lane` (its model changed). None when the run is stopping."""
        settings = self.runs[i]
        with self._lock:
            if self._stopping.is_set():
                return None
            lane = self._lane_of[i]
            assert lane is not None, "every camera was given a lane"
            shared = lane.runner.choice.accelerator != "cpu"  # a camera on the CPU has a lane of its own
            pipeline = self._rejoin(settings, lane, stats) if shared and not new_lane else None
            if pipeline is None:
                pipeline = self._on_a_new_lane(i, lane, stats)
            self.pipelines[i] = pipeline
            stats.state, stats.restarted = RUNNING, time.monotonic()
        return pipeline

    def _rejoin(self, settings: Settings, lane: InferenceLane, stats: Stats) -> Pipeline | None:
        """The camera of `settings` back on `lane`, or None when the lane ended meanwhile."""
        try:
            return Pipeline(settings, self._publishers(settings), lane=lane, stats=stats)
        except LaneEnded:
            return None

    def _on_a_new_lane(self, i: int, old: InferenceLane, stats: Stats) -> Pipeline:
        """Camera `i` on a lane built anew; the cameras of its old lane that ended rejoin it when they are rebuilt,
        if it is on the Edge TPU."""
        mates = [j for j, other in enumerate(self._lane_of) if other is old and j != i] if old.ended else []
        self._build_lane([i], self._cpu_lanes[i], [stats])
        lane = self._lane_of[i]
        if lane is not None and lane.runner.choice.accelerator != "cpu":
            for j in mates:
                self._lane_of[j] = lane
        pipeline = self.pipelines[i]
        assert pipeline is not None, "_build_lane builds it"
        return pipeline
