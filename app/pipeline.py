"""The runner: builds the stages of a pipeline file and runs the three lanes of DESIGN.md.

capture thread (the stages' `prepare`) → [latest-frame slot] → inference lane (the stages, then the robot outputs)
→ [bounded queue] → output lane (publishers).
Owns the model's loading and accelerator choice, wrapping a live source in `Reconnecting` (which owns its
reconnects), per-stage timing, drop counting, and a shutdown that stops within 2 s with outputs flushed. One
Pipeline is one camera; with several (app.cameras), cameras on one Edge TPU model lend their inference to a shared
lane, which calls `next_frame`, `infer` and `finish_inference` for each in turn.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import replace

from app.model.accelerator import ModelChoice, auto_threads, choose, load_choice, slow_tpu_warning
from app.config import Settings
from app.errors import ModelError
from app.scene.label_events import LabelEvents
from app.model.fit import check_fit
from app.frame import ARRIVAL, Frame
from app.handoff import Handoff
from app.metrics import Stats
from app.scene.motion import MotionGate
from app.model.manifest import Labels, resolve_labels, resolve_model
from app.outputs.base import Output, PublishContext, Publisher
from app.model.runtime import LoadedModel, load_model
from app.outputs.robot import build_robot_outputs
from app.outputs.robot.base import RobotContext, RobotOutput, score_threshold
from app.sources import build_source
from app.sources.base import EndOfStream, Source
from app.sources.mjpeg import decode_scale
from app.sources.reconnect import Reconnecting
from app.stages import STAGES
from app.stages.base import Stage, StageContext
from app.stages.postprocess import Postprocess
from app.stages.track import Track
from app.scene.tracker import ObjectEvent

log = logging.getLogger(__name__)

OUTPUT_QUEUE_SIZE = 8
#: from a stop signal to the end of `run()`: the lanes get DRAIN_S to finish, the publishers the rest to flush
STOP_BUDGET_S = 1.8
DRAIN_S = 0.6
#: how long publishers may take to flush after a run that ended by itself (source ended, --max-frames)
FLUSH_S = 5.0
#: frames after which the Edge TPU's speed is judged (after its first, slow, invocations)
TPU_CHECK_AFTER = 50


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


def load_pipeline_model(settings: Settings, loaded: tuple[LoadedModel, ModelChoice] | None = None,
                        lanes: int = 1) -> tuple[LoadedModel, Labels, ModelChoice, list[str]]:
    """The inference stage's model on the accelerator chosen for it (or the one `loaded` already, shared with other
    cameras), its labels, the choice made, and the warnings about how the model fits the pipeline (logged here).
    `lanes`: the CPU inference lanes this process runs, which share the cores."""
    params = settings.pipeline.inference
    model, choice = loaded or load_choice(choose_model(settings), inference_threads(settings, lanes))
    log.info("%s: accelerator %s: %s", settings.device.camera.name, choice.accelerator, choice.reason)
    path = resolve_model(params.model, settings.models_dir, settings.config_path)
    labels = resolve_labels(params.labels, params.model, settings.models_dir, path, settings.config_path)
    warnings = [f"{settings.pipeline_path}: {warning}" for warning in check_fit(settings.pipeline, model, labels)]
    for warning in warnings:
        log.warning("%s", warning)
    return model, labels, choice, warnings


class Pipeline:
    """One configured run: call `run()`; `stop()` (from a signal handler or another thread) ends it."""

    def __init__(self, settings: Settings, publishers: list[Publisher], source: Source | None = None,
                 robot_outputs: list[RobotOutput] | None = None, loaded: tuple[LoadedModel, ModelChoice] | None = None,
                 lanes: int = 1, shared_lane: threading.Event | None = None, stats: Stats | None = None) -> None:
        """`loaded`: a model already loaded, shared with other cameras; `lanes`: the CPU inference lanes of this
        process (several cameras); `shared_lane`: this pipeline's frames are inferred by a `SharedInference` lane
        (app.cameras) serving several cameras, rather than by a lane of its own; the event is set at every frame
        handed over, for that lane to wait on; `stats`: those of the camera's earlier run, for a camera rebuilt
        after a failure (its counts go on)."""
        self.settings = settings
        self.publishers = publishers
        #: sent each frame's results from the inference lane, before the output lane (UDP, ZeroMQ, the Python API)
        self.robot_outputs = build_robot_outputs(settings) if robot_outputs is None else robot_outputs
        self.shared_lane = shared_lane
        self.stats = Stats() if stats is None else stats
        self.model, self.labels, self.choice, warnings = load_pipeline_model(settings, loaded, lanes)
        self.stats.warnings += [w for w in (*settings.warnings, *warnings) if w not in self.stats.warnings]
        #: tracked objects' events, from the inference lane to the output lane: never dropped with a frame
        self._object_events: deque[ObjectEvent] = deque()
        self.stages: list[Stage] = [STAGES[name](params) for name, params in settings.pipeline.stages]
        self._start_stages()
        # a camera that can scale for free (picamera2's lores stream) delivers the stretched model input too
        stretch = settings.pipeline.preprocess.resize == "stretch"
        self._stop = threading.Event()
        self._decode_errors = 0
        camera = settings.device.camera
        # an MJPEG camera decodes at the smallest size the model and the outputs allow: `auto` is decided here
        scale = decode_scale(settings.device, self.model.input_size)
        source = source or build_source(camera.model_copy(update={"decode_scale": scale}),
                                       self.model.input_size if stretch else None)
        #: a camera or stream is waited for, through every failure, inside the process (DESIGN.md: who owns what); so
        #: is a file or folder not there yet (a disk not mounted), then read as any file: not live unless paced
        self.source = (Reconnecting(source, camera.reconnect, self._stop, lambda: self.stats.drop("source_error"))
                       if source.reconnects else source)
        if isinstance(self.source, Reconnecting):
            self.stats.health["source"] = self.source.health.document
        self.gate = self._motion_gate()
        self._interrupted = False
        self._error: BaseException | None = None
        lossless = not self.source.live
        self._max_frames: int | None = None
        self._slot: Handoff[Frame] = Handoff(1, lossless, lambda: self.stats.drop("stale"),
                                             shared_lane.set if shared_lane else None)
        self._results: Handoff[Frame] = Handoff(OUTPUT_QUEUE_SIZE, lossless, lambda: self.stats.drop("output_full"))

    def _motion_gate(self) -> MotionGate | None:
        """The gate for `camera.motion` (`auto`: on for a live source) and `camera.detect_fps`, if either is on."""
        camera = self.settings.device.camera
        enabled = self.source.live if camera.motion.enabled == "auto" else camera.motion.enabled
        if not enabled and not camera.detect_fps:
            return None
        tracker = next((stage.tracker for stage in self.stages if isinstance(stage, Track)), None)
        gate = MotionGate(camera.motion, enabled, camera.detect_fps, lambda: tracker is not None and tracker.active)
        self.stats.reports["motion"] = gate.document
        log.info("%s: motion gating %s%s", camera.name, "on" if enabled else "off",
                 f", at most {camera.detect_fps:g} inferred frames a second" if camera.detect_fps else "")
        return gate

    def _start_stages(self) -> None:
        ctx = StageContext(self.model, self.labels, self.settings.device.camera, self._object_events)
        for stage in self.stages:
            stage.start(ctx)

    def _fall_back_to_cpu(self, failure: ModelError) -> None:
        """The Edge TPU failed mid-run (unplugged): carry on with the CPU model `auto` kept in reserve."""
        fallback = self.choice.fallback
        assert fallback is not None, "only a choice with a CPU fallback falls back"
        log.warning("Edge TPU failed (%s); switching to the CPU model %s", failure, fallback.name)
        for stage in self.stages:
            stage.stop()
        self.model = load_model(fallback, "cpu", self.model.threads)
        self.choice = ModelChoice(fallback, "cpu", "the Edge TPU failed mid-run")
        self._start_stages()
        self.stats.info.update(model=fallback.name, accelerator="cpu")
        self.stats.drop("accelerator_lost")

    def _check_tpu_speed(self) -> None:
        warning = slow_tpu_warning(self.choice, self.stats.percentile("inference", 50))
        if warning:
            log.warning("%s", warning)
            self.stats.warnings.append(warning)

    def stop(self) -> None:
        """Stop now (a signal handler, another thread): `run()` returns within STOP_BUDGET_S."""
        self._interrupted = True
        self._end()

    def _end(self) -> None:
        self._stop.set()
        self._slot.close()

    def run(self, max_frames: int | None = None) -> Stats:
        """Run until the source ends, `max_frames` are processed, or `stop()`; raise what failed, if anything."""
        self._max_frames = max_frames
        self._start_outputs_and_source()
        name = self.settings.device.camera.name
        own = [("inference", self._inference_lane)] if self.shared_lane is None else []
        lanes = [threading.Thread(target=self._guard, args=(lane,), name=f"{kind}-{name}", daemon=True)
                 for kind, lane in (("capture", self._capture_lane), *own, ("output", self._output_lane))]
        for lane in lanes:
            lane.start()
        while lanes[-1].is_alive() and not self._interrupted:
            lanes[-1].join(0.1)
        ending = time.monotonic()
        self._end()
        for lane in lanes:  # a camera read may block a little longer: its thread is a daemon
            lane.join(max(0.0, ending + DRAIN_S - time.monotonic()))
        close_publishers(self.publishers, ending + STOP_BUDGET_S if self._interrupted else time.monotonic() + FLUSH_S)
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
        self.stats.info.update(model=self.model.path.name, accelerator=self.model.accelerator,
                               runtime=self.model.runtime, pipeline=self.settings.pipeline.name,
                               camera=self.settings.device.camera.name)
        ctx = PublishContext(self.settings, self.stats, self.settings.pipeline.publish, not self.source.live)
        robot = self._robot_context()
        started: list[Publisher] = []
        robots: list[RobotOutput] = []
        try:
            for publisher in self.publishers:
                publisher.start(ctx)
                started.append(publisher)
            for output in self.robot_outputs:
                output.start(robot)
                robots.append(output)
            self.source.open()
        except BaseException:
            close_publishers(started, time.monotonic() + FLUSH_S)
            for output in robots:
                output.close()
            raise
        self.stats.info["source_description"] = self.source.description
        log.info("%s: source %s opened (%s)", self.settings.device.camera.name, self.source.description,
                 "live: newest frame wins" if self.source.live else "every frame processed")
        if self.stats.processed == 0:  # a camera rebuilt after a failure keeps its uptime, as it keeps its counts
            self.stats.started = time.monotonic()

    def _robot_context(self) -> RobotContext:
        """What the robot outputs are told of this run: the camera, and the model's class ids and names as its
        results name them (a classifier's by its output count)."""
        camera = self.settings.device.camera
        postprocess = next(stage for stage in self.stages if isinstance(stage, Postprocess))
        classifier = postprocess.kind == "classifier"
        labels = (self.labels.for_classes(self.model.outputs[0].shape[1]) if classifier
                  else dict(self.labels.names))
        return RobotContext(camera.name, self.settings.pipeline.name, camera.frame_id or camera.name, labels,
                            self.stats, classifier, score_threshold(self.settings.pipeline))

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
        self._results.close()

    def _capture_lane(self) -> None:
        camera, seq = self.settings.device.camera, 0
        try:
            while not self._stop.is_set():
                captured = self.source.read()
                seq += 1
                self.stats.captured_frame()
                self._count_decode_errors()
                stamped = captured.t_capture
                frame = Frame(captured.image, seq, camera.name, captured.order,
                              t_capture=time.monotonic() if stamped is None else stamped,
                              stamp=ARRIVAL if stamped is None else captured.stamp, lores=captured.lores)
                if self.gate is not None:
                    skipped, frame.motion = self.gate.admit(captured.image, frame.t_capture)
                    if skipped:  # never handed over: it costs its decode and the motion check only
                        self.stats.skipped(skipped)
                        continue
                for stage in self.stages:  # e.g. the resize, on a core invoke() leaves idle
                    stage.prepare(frame)
                if not self._slot.put(frame):
                    return
        except EndOfStream:
            self._count_decode_errors()
            if not self._stop.is_set():
                log.info("source %s ended", self.source.description)
        finally:
            self._slot.close()

    def _count_decode_errors(self) -> None:
        """The frames the source skipped since last asked, as `decode_error` drops."""
        new = self.source.decode_errors - self._decode_errors
        if new:
            self.stats.drop("decode_error", new)
            self._decode_errors += new

    def _inference_lane(self) -> None:
        try:
            while (frame := self._slot.get()) is not None and not self._stop.is_set():
                self.infer(frame)
        finally:
            self.finish_inference()

    def next_frame(self) -> tuple[Frame | None, bool]:
        """For a shared inference lane: the frame waiting (or None), and whether this camera's frames have ended."""
        if self._stop.is_set():
            return None, True
        frame = self._slot.get(block=False)
        return frame, frame is None and self._slot.closed

    def infer(self, frame: Frame) -> None:
        """Run the stages on one frame, then send its results to the robot outputs and hand it to the output lane."""
        try:
            processed = self._process(frame)
        except ModelError as failure:
            if self.choice.fallback is None:
                raise
            self._fall_back_to_cpu(failure)
            return
        if processed is None:
            return
        self.stats.observe(processed.timing)
        for output in self.robot_outputs:
            output.send(processed)
        if self.stats.processed == TPU_CHECK_AFTER:
            self._check_tpu_speed()
        self._results.put(processed)
        if self._max_frames and self.stats.processed >= self._max_frames:
            self._end()

    def finish_inference(self) -> None:
        """This camera's inference is over: the stages finish (tracks end) and the output lane drains."""
        for stage in self.stages:
            stage.finish()
        self._results.close()

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

    def _output_lane(self) -> None:
        pipeline = self.settings.pipeline
        publish, overlay = pipeline.publish, pipeline.overlay
        tracker = LabelEvents(publish.labels, publish.min_score, publish.appear_frames, publish.clear_frames,
                               tracked_only=pipeline.track is not None)
        last: Output | None = None
        while (frame := self._results.get()) is not None:
            events = tracker.update(frame)
            last = Output(frame, frame.result(pipeline.name), events, dict(tracker.counts), overlay,
                          self.stats.recent_fps(), self._objects_until(frame.seq))
            self._publish(last)
        if last is not None and self._object_events:  # the tracks the run's end closed
            self._publish(replace(last, events=[], objects=self._objects_until(None), replay=True))

    def _objects_until(self, seq: int | None) -> list[ObjectEvent]:
        """The object events of frames up to `seq` (every one left, for None), taken from the hand-over."""
        taken = []
        while self._object_events and (seq is None or self._object_events[0].seq <= seq):
            taken.append(self._object_events.popleft())
        return taken

    def _publish(self, out: Output) -> None:
        for publisher in self.publishers:
            publisher.publish(out)
        if not out.replay:
            self.stats.published(out.frame.t_capture)


def close_publishers(publishers: list[Publisher], deadline: float) -> None:
    """Close every publisher at once, each flushing in its own thread, and wait for them until `deadline`."""
    closing = [(p, threading.Thread(target=p.close, args=(deadline,), name=f"close-{type(p).__name__}",
                                    daemon=True)) for p in publishers]
    for _, thread in closing:
        thread.start()
    for publisher, thread in closing:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("%s did not finish flushing in time; what it still held is lost", type(publisher).__name__)
