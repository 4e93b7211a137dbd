"""The Python API: a configured pipeline inside a robot's own process, its results iterated as they come.

    from app.api import open_pipeline

    with open_pipeline("detect", source="/dev/video0") as results:
        for result in results:                     # one Result per processed frame, stamped at exposure
            print(result.seq, result.stamp_ns, [(d.label, d.box) for d in result.detections])

The pipeline runs in its own threads (the three lanes of DESIGN.md); results are taken from the end of the
inference lane, like the robot outputs, through a small hand-off: on a live source the newest results win and a
reader that falls behind loses the oldest (counted as `api_behind` drops), on a file every frame's result waits
for the reader. No output runs unless asked (`outputs=True`: the ones config.yaml turns on). `stop()` ends the run
from any thread; leaving the `with` block stops it too; a failure of the run is raised by the iteration.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

import numpy as np

from app.config import Settings, load_cameras
from app.errors import ConfigError
from app.frame import Classification, Detection, Frame
from app.handoff import Handoff
from app.metrics import Stats
from app.model.kinds.segmentation import Segments
from app.outputs.mask_png import segments_of
from app.outputs.robot.base import RobotContext, RobotOutput

#: results held for a reader that is busy (a live source drops the oldest beyond this)
RESULTS_HELD = 4
#: config.yaml's outputs, each turned off unless the caller asks for outputs
OUTPUTS = ("jsonl", "mqtt", "http", "snapshots", "webhooks", "udp", "zmq")


@dataclass(frozen=True)
class Result:
    """One processed frame: its stamp, its results and (with `frames=True`) its image."""

    camera: str
    pipeline: str
    seq: int
    #: the stamp: CLOCK_MONOTONIC seconds, what it is (exposure, presentation, arrival), and on the wall clock
    t_capture: float
    stamp: str
    ts: float
    size: tuple[int, int]
    detections: list[Detection]
    classes: list[Classification]
    timing_ms: dict[str, float]
    document: dict = field(repr=False)
    #: the frame (H x W x 3, channels in `order`), only with `frames=True`; read it, do not write it
    image: np.ndarray | None = field(default=None, repr=False)
    order: str = ""
    #: a segmentation model's result: `segments.mask_at_source()` is the class of every source pixel (uint8
    #: [height, width], 255 where the model did not see), its areas are in `document["segments"]`; else None
    segments: Segments | None = field(default=None, repr=False)

    @property
    def stamp_ns(self) -> int:
        return round(self.t_capture * 1e9)


class _ResultQueue(RobotOutput):
    """The API's robot output: each processed frame, as a Result, into a hand-off the iterator reads."""

    def __init__(self, frames: bool) -> None:
        self.frames = frames
        self.results: Handoff[Result] | None = None
        self.pipeline = ""

    def bind(self, lossless: bool, stats: Stats) -> None:
        self.results = Handoff(RESULTS_HELD, lossless, lambda: stats.drop("api_behind"))

    def start(self, ctx: RobotContext) -> None:
        self.pipeline = ctx.pipeline

    def send(self, frame: Frame) -> None:
        assert self.results is not None
        self.results.put(Result(
            frame.source, self.pipeline, frame.seq, frame.t_capture, frame.stamp, frame.ts, frame.size,
            list(frame.detections), list(frame.classes), dict(frame.timing), frame.result(self.pipeline),
            frame.image if self.frames else None, frame.order if self.frames else "", segments_of(frame)))


class Results:
    """A running pipeline: iterate for its results; `stop()` from any thread. Made by `open_pipeline`."""

    def __init__(self, settings: Settings, frames: bool, outputs: bool) -> None:
        from app.pipeline import Pipeline
        from app.outputs import build_publishers
        from app.outputs.robot import build_robot_outputs

        self._queue = _ResultQueue(frames)
        robots = [*(build_robot_outputs(settings) if outputs else []), self._queue]
        self.pipeline = Pipeline(settings, build_publishers(settings) if outputs else [], robot_outputs=robots)
        self.stats: Stats = self.pipeline.stats
        self._queue.bind(not self.pipeline.source.live, self.stats)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="smartcam-api", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.pipeline.run()
        except BaseException as exc:  # raised to the reader by the iteration
            self._error = exc
        finally:
            assert self._queue.results is not None
            self._queue.results.close()

    def __iter__(self) -> Iterator[Result]:
        assert self._queue.results is not None
        while (result := self._queue.results.get()) is not None:
            yield result
        self._thread.join()
        if self._error is not None:
            raise self._error

    @property
    def running(self) -> bool:
        """The run has not ended yet."""
        return self._thread.is_alive()

    def stop(self, wait: bool = True) -> None:
        """End the run (from any thread, a signal handler too with `wait=False`); the iteration then ends."""
        self.pipeline.stop()
        assert self._queue.results is not None
        self._queue.results.close()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> Results:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def open_pipeline(pipeline: str = "detect", *, source: str | None = None, config: str | Path | None = None,
                  camera: str | None = None, overrides: Sequence[str] = (), frames: bool = False,
                  outputs: bool = False) -> Results:
    """Start `pipeline` (a name in pipelines/ or a path) on config.yaml's camera, or `source`; with `cameras:` in
    the config, on the one named `camera` (its own pipeline, `pipeline` when it names none). `overrides` are `--set`
    ones (`camera.fps=15`); `frames`: results carry their image; `outputs`: run config.yaml's outputs (MQTT, HTTP,
    UDP, ...) too. Raises `app.errors.ConfigError` (one line per problem) for a wrong file or key."""
    quiet = [] if outputs else [f"{name}.enabled=false" for name in OUTPUTS]
    runs = load_cameras(pipeline, config, [*quiet, *overrides])
    if camera is None and len(runs) == 1:
        (settings,) = runs
    else:
        named = {run.device.camera.name: run for run in runs}
        if camera not in named:
            raise ConfigError(f"{runs[0].config_path}: open_pipeline(camera=...) names one of its cameras: "
                              f"{', '.join(named)}")
        settings = named[camera]
    if source is not None:  # as --source would: this camera, another source
        camera_config = settings.device.camera.model_copy(update={"source": source})
        settings = replace(settings, device=settings.device.model_copy(update={"camera": camera_config}))
    return Results(settings, frames, outputs)
