"""One camera: builds the stages of its pipeline file and runs its part of the three lanes of DESIGN.md.

capture thread (the stages' `prepare`) → [latest-frame slot] → inference lane (the stages, then the robot outputs)
→ [bounded queue] → output lane (publishers).
A Pipeline owns its capture lane (app.capture_lane: the source and the motion gate) and its output lane
(app.output_lane: the publishers), its stages, their per-stage timing, the robot outputs, and a shutdown that
stops within 2 s with outputs flushed. The inference lane is not its own: an `InferenceLane` (app.inference_lane)
holding the model runner serves it, alone or with other cameras, calling `next_frame`, `infer` and
`finish_inference`. Built alone (the Python API, the bench), a Pipeline loads its model into a lane of one;
app.cameras builds the lanes of a run.
"""

from __future__ import annotations

import logging
import threading
import time

from app.capture_lane import CaptureLane
from app.config import Settings
from app.errors import ModelError
from app.frame import Frame
from app.inference_lane import InferenceLane, LaneEnded
from app.metrics import Stats
from app.model.kinds.base import CLASSES
from app.model.runner import ModelRunner
from app.output_lane import FLUSH_S, OutputLane
from app.outputs.base import Publisher
from app.outputs.robot import build_robot_outputs
from app.outputs.robot.base import RobotContext, RobotOutput, score_threshold
from app.scene.tracker import ObjectEvent
from app.sources.base import Source
from app.stages import build_stages
from app.stages.base import Stage, StageContext
from app.stages.crop import Crop
from app.stages.postprocess import Postprocess
from app.teach.verdicts import TAUGHT_NOT

log = logging.getLogger(__name__)

#: from a stop signal to the end of `run()`: the lanes get DRAIN_S to finish, the publishers the rest to flush
STOP_BUDGET_S = 1.8
DRAIN_S = 0.6
#: frames after which the Edge TPU's speed is judged (after its first, slow, invocations)
TPU_CHECK_AFTER = 50


class Pipeline:
    """One configured run: call `run()`; `stop()` (from a signal handler or another thread) ends it."""

    def __init__(self, settings: Settings, publishers: list[Publisher], source: Source | None = None,
                 robot_outputs: list[RobotOutput] | None = None, lane: InferenceLane | None = None,
                 stats: Stats | None = None) -> None:
        """`lane`: the inference lane that serves this camera (app.cameras builds it; without one, the camera's
        model is loaded into a lane of its own); `stats`: those of the camera's earlier run, for a camera rebuilt
        after a failure (its counts go on)."""
        self.settings = settings
        #: sent each frame's results from the inference lane, before the output lane (UDP, ZeroMQ, the Python API)
        self.robot_outputs = build_robot_outputs(settings) if robot_outputs is None else robot_outputs
        self.lane = lane or InferenceLane(ModelRunner.load(settings), f"inference-{settings.device.camera.name}")
        self.runner = self.lane.runner
        self.stats = Stats() if stats is None else stats
        log.info("%s: accelerator %s: %s", settings.device.camera.name, self.runner.choice.accelerator,
                 self.runner.choice.reason)
        warnings = self.runner.fit_warnings(settings)
        self.stats.warnings += [w for w in (*settings.warnings, *warnings) if w not in self.stats.warnings]
        self.stages: list[Stage] = build_stages(settings)
        self._count_taught_not()
        self._start_stages()
        self._stop = threading.Event()
        self.capture = CaptureLane(settings, source, self.runner.model.input_size, self.stages, self.stats,
                                   self._stop, self.lane.arrived.set)
        self.source = self.capture.source
        self.outputs = OutputLane(settings, publishers, self.stats, lossless=not self.source.live,
                                  ring=self.capture.ring, produces=self._postprocess().produces)
        self._interrupted = False
        self._error: BaseException | None = None
        self._max_frames: int | None = None
        #: a reload's settings for the stages, applied by the inference lane before its next frame
        self._reload: Settings | None = None
        #: set when the inference lane is done with this camera (it left the lane)
        self._left_lane = threading.Event()
        if not self.lane.join(self):
            raise LaneEnded("its inference lane ended while it was built")

    def _count_taught_not(self) -> None:
        """The detections the crop stage's teach step drops, in the stats (`taught_not`), going on from the count of
        the camera's earlier run when it is rebuilt after a failure."""
        crop = next((stage for stage in self.stages if isinstance(stage, Crop)), None)
        if crop is not None:
            earlier = self.stats.detections_dropped.get(TAUGHT_NOT)
            before = earlier() if earlier is not None else 0
            self.stats.detections_dropped[TAUGHT_NOT] = \
                lambda: before + (crop.verdicts.taught_not if crop.verdicts is not None else 0)

    def _start_stages(self) -> None:
        #: the model the stages were started with (the runner's, until it falls back to the CPU)
        self.model = self.runner.model
        ctx = StageContext(self.model, self.runner.labels, self.settings.device.camera)
        for stage in self.stages:
            stage.start(ctx)

    def reconfigure(self, settings: Settings, publishers: list[Publisher]) -> None:
        """A reload that this camera takes live (app.reload says what that is): each lane applies its part between
        two frames; `publishers`: those built from `settings`, for the outputs whose section changed."""
        self.capture.reconfigure(settings.device.camera)
        self._reload = settings
        self.outputs.reconfigure(settings, publishers)

    def _apply_reload(self, settings: Settings) -> None:
        """The stages whose parameters changed take the new ones, every stage the camera's new zones and lines
        (the tracker keeps its tracks)."""
        camera_changed = settings.device.camera != self.settings.device.camera
        self._reload, self.settings = None, settings
        ctx = StageContext(self.model, self.runner.labels, settings.device.camera)
        for stage, (_, params) in zip(self.stages, settings.pipeline.stages, strict=True):
            if params != stage.params or camera_changed:
                stage.reconfigure(params, ctx)

    def _follow_fallback(self) -> None:
        """The runner switched to the CPU model (the Edge TPU failed mid-run): start the stages again on it."""
        for stage in self.stages:
            stage.stop()
        self._start_stages()
        self.stats.info.update(model=self.model.path.name, accelerator=self.model.accelerator)
        self.stats.drop("accelerator_lost")

    def stop(self) -> None:
        """Stop now (a signal handler, another thread): `run()` returns within STOP_BUDGET_S."""
        self._interrupted = True
        self._end()

    def _end(self) -> None:
        self._stop.set()
        self.capture.slot.close()

    def run(self, max_frames: int | None = None) -> Stats:
        """Run until the source ends, `max_frames` are processed, or `stop()`; raise what failed, if anything."""
        self._max_frames = max_frames
        try:
            self._start_outputs_and_source()
        except BaseException:
            self._end()  # the lane lets this camera go
            raise
        name = self.settings.device.camera.name
        lanes = [threading.Thread(target=self._guard, args=(lane,), name=f"{kind}-{name}", daemon=True)
                 for kind, lane in (("capture", self.capture.run), ("output", self.outputs.run))]
        for lane in lanes:
            lane.start()
        self.lane.start()
        while lanes[-1].is_alive() and not self._interrupted:
            lanes[-1].join(0.1)
        ending = time.monotonic()
        self._end()
        self._left_lane.wait(max(0.0, ending + DRAIN_S - time.monotonic()))
        for lane in lanes:  # a camera read may block a little longer: its thread is a daemon
            lane.join(max(0.0, ending + DRAIN_S - time.monotonic()))
        self.outputs.close(ending + STOP_BUDGET_S if self._interrupted else time.monotonic() + FLUSH_S)
        for stage in self.stages:
            stage.stop()
        for output in self.robot_outputs:
            output.close()
        if not lanes[0].is_alive():
            self.source.close()
        if self._error is not None:
            raise self._error
        return self.stats

    def _start_outputs_and_source(self) -> None:
        """Start the publishers, then open the source; on failure close what was started."""
        model = self.runner.model
        self.stats.info.update(model=model.path.name, accelerator=model.accelerator, runtime=model.runtime,
                               pipeline=self.settings.pipeline.name, camera=self.settings.device.camera.name)
        robot = self._robot_context()
        self.outputs.start()
        robots: list[RobotOutput] = []
        try:
            for output in self.robot_outputs:
                output.start(robot)
                robots.append(output)
            self.capture.open()
        except BaseException:
            self.outputs.close(time.monotonic() + FLUSH_S)
            for output in robots:
                output.close()
            raise
        if self.stats.processed == 0:  # a camera rebuilt after a failure keeps its uptime, as it keeps its counts
            self.stats.started = time.monotonic()

    def _postprocess(self) -> Postprocess:
        """The stage that decodes the model's outputs (started: it knows what its kind produces)."""
        return next(stage for stage in self.stages if isinstance(stage, Postprocess))

    def _robot_context(self) -> RobotContext:
        """What the robot outputs are told of this run: the camera, and the model's class ids and names as its
        results name them (classes by the model's output count)."""
        camera = self.settings.device.camera
        classes = self._postprocess().produces == CLASSES
        labels = (self.runner.labels.for_classes(self.model.outputs[0].shape[1]) if classes
                  else dict(self.runner.labels.names))
        return RobotContext(camera.name, self.settings.pipeline.name, camera.frame_id or camera.name, labels,
                            self.stats, classes, score_threshold(self.settings.pipeline))

    def _guard(self, lane) -> None:
        """Run one lane; the first failure stops the whole pipeline and is re-raised by `run`."""
        try:
            lane()
        except BaseException as exc:  # handed to the main thread
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        """A lane (its own, or a shared inference lane) failed: stop, and have `run` raise `exc`."""
        if self._error is None:
            self._error = exc
        self._end()
        self.outputs.results.close()

    def next_frame(self) -> tuple[Frame | None, bool]:
        """For the inference lane: the frame waiting (or None), and whether this camera's frames have ended."""
        if self._stop.is_set():
            return None, True
        frame = self.capture.slot.get(block=False)
        return frame, frame is None and self.capture.slot.closed

    def infer(self, frame: Frame) -> None:
        """Run the stages on one frame, then send its results to the robot outputs and hand it to the output lane."""
        if self.model is not self.runner.model:  # another camera of the lane found the Edge TPU gone
            self._follow_fallback()
        if self._reload is not None:
            self._apply_reload(self._reload)
        try:
            processed = self._process(frame)
        except ModelError as failure:
            if not self.runner.fall_back(failure):
                raise
            self._follow_fallback()
            return
        if processed is None:
            return
        self.stats.observe(processed.timing)
        for output in self.robot_outputs:
            output.send(processed)
        if self.stats.processed == TPU_CHECK_AFTER and (
                warning := self.runner.speed_warning(self.stats.percentile("inference", 50))):
            self.stats.warnings.append(warning)
        self.outputs.put(processed)
        if self._max_frames and self.stats.processed >= self._max_frames:
            self._end()

    def finish_inference(self) -> None:
        """This camera's inference is over: the stages finish (tracks end), and the output lane drains and hands the
        events of that end to the publishers."""
        closing: list[ObjectEvent] = []
        try:
            for stage in self.stages:
                closing += stage.finish()
        finally:
            self.outputs.end(closing)
            self._left_lane.set()

    def _process(self, frame: Frame) -> Frame | None:
        for stage in self.stages:
            started = time.perf_counter()
            result = stage.process(frame)
            frame.timing[stage.name] = (time.perf_counter() - started) * 1000
            if result is None:
                self.stats.drop(f"dropped_by_{stage.name}")
                return None
            frame = result
        frame.timing["exposure_to_result"] = (time.monotonic() - frame.t_capture) * 1000
        return frame
