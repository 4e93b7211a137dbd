"""One bench run, in a process of its own: `python -m app.bench.child SPEC` prints its measurement as JSON.

A run is one mode (`limit`, `loop`, `pipeline`, `gated`, `robot` or `clips`) at one thread count, with the outputs
off or on. Its own process
makes its CPU time (user + sys, `time.process_time`), its peak RSS and its time from launch to the first result
its own. Every mode records, per result, when it was ready and how long after the exposure (`exposure_to_result`)
and how long `invoke()` took, and is reduced to the same numbers by `measurement`.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from app.bench.camera import PacedCamera
from app.config import OverlayParams, Settings, load_settings
from app.frame import Frame, InputGeometry
from app.model.kinds.segmentation import SEGMENTS, Segments
from app.model.runner import ModelRunner
from app.pipeline import Pipeline
from app.outputs import Output, Publisher, build_publishers
from app.outputs.overlay import draw
from app.sources import build_source
from app.sources.base import Source
from app.stages import build_stages
from app.stages.base import Stage, StageContext

MODES = ("limit", "loop", "pipeline", "gated", "robot", "clips")
#: the modes the bench runs unless told: `gated` (the pipeline with motion gating, against `pipeline` without it)
#: is for a source where gating matters, e.g. a still scene as a camera; `robot` is the pipeline with its UDP and
#: ZeroMQ outputs sending to clients in the bench's own process, which time each message's receipt; `clips` is the
#: pipeline with event clips on (an H.264 source's packets remuxed, a raw source's frames encoded), against
#: `pipeline` without them
#: the frames a run's latency-over-time series keeps at most (evenly spaced), for the plot
SERIES_POINTS = 600


@dataclass(frozen=True)
class RunSpec:
    """What to measure, as the parent process asks for it."""

    mode: str
    outputs: bool
    threads: int
    frames: int
    pipeline: str
    config: str | None
    overrides: list[str]
    live_fps: float | None
    #: time.monotonic() when the parent launched this process (the clock is the machine's, shared by processes)
    launched: float
    #: the live page's port with the outputs on; its MJPEG viewer runs in the parent, so it costs this run nothing
    port: int = 0
    #: `robot`: the ports of the parent's UDP client and of the ZeroMQ PUB socket its subscriber connects to
    udp_port: int = 0
    zmq_port: int = 0


@dataclass
class Recorder:
    """Per result: when it was ready, exposure-to-result and inference ms; and, where measured, the decoding ms
    (the postprocess stage: the kind's decoder, e.g. YOLO's decode and NMS), a segmentation's source-size mask
    ms (what privacy and the mask API build from it) and the overlay's ms."""

    ready: list[float] = field(default_factory=list)
    exposure_to_result: list[float] = field(default_factory=list)
    inference: list[float] = field(default_factory=list)
    postprocess: list[float] = field(default_factory=list)
    mask: list[float] = field(default_factory=list)
    overlay: list[float] = field(default_factory=list)

    def add(self, ready: float, exposure_to_result_ms: float, inference_ms: float,
            postprocess_ms: float | None = None) -> None:
        self.ready.append(ready)
        self.exposure_to_result.append(exposure_to_result_ms)
        self.inference.append(inference_ms)
        if postprocess_ms is not None:
            self.postprocess.append(postprocess_ms)


def measurement(spec: RunSpec, record: Recorder, cpu_s: float, drops: dict[str, int],
                captured: int | None = None) -> dict:
    """The run's numbers: fps between the first and last result, percentiles, CPU per result and per captured
    frame (`captured`: the frames read, when not one per result), peak RSS."""
    count = len(record.ready)
    span = record.ready[-1] - record.ready[0] if count > 1 else 0.0

    def percentiles(values: list[float], *qs: int) -> dict[str, float]:
        return {f"p{q}": round(float(np.percentile(values, q)), 2) for q in qs}

    step = max(1, count // SERIES_POINTS)
    stages = {f"{name}_ms": percentiles(values, 50, 95)
              for name, values in (("postprocess", record.postprocess), ("mask", record.mask),
                                   ("overlay", record.overlay)) if values}
    return {
        "mode": spec.mode, "outputs": spec.outputs, "threads": spec.threads, "live_fps": spec.live_fps,
        "frames": count,
        "fps": round((count - 1) / span, 2) if span else 0.0,
        "inference_ms": percentiles(record.inference, 50, 95),
        **stages,
        "exposure_to_result_ms": percentiles(record.exposure_to_result, 50, 95, 99),
        #: p99 over each fifth of the run in turn: flat when latency does not creep up in a long run
        "exposure_to_result_p99_by_fifth_ms": [percentiles(list(part), 99)["p99"]
                                              for part in np.array_split(record.exposure_to_result, 5) if len(part)],
        "cpu_ms_per_frame": round(cpu_s * 1000 / count, 2),
        "cpu_ms_per_captured_frame": round(cpu_s * 1000 / (captured or count), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "first_result_s": round(record.ready[0] - spec.launched, 3),
        "drops": drops,
        "series": [[round(record.ready[i] - record.ready[0], 3), round(record.exposure_to_result[i], 2)]
                   for i in range(0, count, step)],
    }


def camera(settings: Settings, spec: RunSpec) -> Source:
    """The configured source, made a camera at `--live-fps` when asked."""
    source = build_source(settings.device.camera)
    return PacedCamera(source, spec.live_fps) if spec.live_fps else source


def first_input(settings: Settings, stages: list[Stage]) -> None:
    """Write the source's first frame into the model's input, through the pipeline's own preprocess."""
    source = build_source(settings.device.camera)
    source.open()
    try:
        image = source.read().image
    finally:
        source.close()
    stages[0].process(Frame(image, 1, "bench"))


def started_stages(settings: Settings, ctx: StageContext) -> list[Stage]:
    stages = build_stages(settings)
    for stage in stages:
        stage.start(ctx)
    return stages


def run_limit(settings: Settings, spec: RunSpec) -> dict:
    """`invoke()` alone, over and over, on the first frame's input: what the model costs by itself."""
    runner = ModelRunner.load(settings)
    model = runner.model
    first_input(settings, started_stages(settings, StageContext(model, runner.labels)))
    record = Recorder()
    cpu = time.process_time()
    for _ in range(spec.frames):
        started = time.perf_counter()
        model.invoke()
        ms = (time.perf_counter() - started) * 1000
        record.add(time.monotonic(), ms, ms)
    return measurement(spec, record, time.process_time() - cpu, {})


def run_loop(settings: Settings, spec: RunSpec, workdir: Path) -> dict:
    """The loop of the picamera2, TFLite and pycoral examples, on one thread: read, convert the whole frame to RGB,
    resize, `set_tensor` a new array, `invoke`, decode (with smartcam's own decoder, the same work either way),
    and with the outputs on, draw on the frame, encode it as JPEG and write a JSON line, every frame."""
    runner = ModelRunner.load(settings)
    model = runner.model
    decoders = started_stages(settings, StageContext(model, runner.labels))[2:]  # postprocess (and filter)
    interpreter, index = model.interpreter, model.input.index
    width, height = model.input_size
    source = camera(settings, spec)
    source.open()
    results = (workdir / "loop.jsonl").open("w") if spec.outputs else None
    record = Recorder()
    cpu = time.process_time()
    for seq in range(1, spec.frames + 1):
        captured = source.read()
        exposed = captured.t_capture or time.monotonic()
        rgb = cv2.cvtColor(captured.image, cv2.COLOR_BGR2RGB)
        resized = cv2.resize(rgb, (width, height))
        started = time.perf_counter()
        interpreter.set_tensor(index, np.expand_dims(resized, 0))
        interpreter.invoke()
        inference_ms = (time.perf_counter() - started) * 1000
        frame = Frame(captured.image, seq, "bench", geometry=InputGeometry(*rgb.shape[1::-1], *rgb.shape[1::-1]))
        decoding = time.perf_counter()
        for decoder in decoders:
            frame = decoder.process(frame) or frame
        postprocess_ms = (time.perf_counter() - decoding) * 1000
        if results is not None:
            annotated = captured.image.copy()
            for d in frame.detections:
                x0, y0, x1, y1 = (round(v) for v in d.box)
                cv2.rectangle(annotated, (x0, y0), (x1, y1), (0, 255, 0), 2)
                cv2.putText(annotated, f"{d.label} {d.score:.2f}", (x0, y0 + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                            (0, 255, 0), 2)
            cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, 80])
            results.write(json.dumps(frame.result(settings.pipeline.name)) + "\n")
        now = time.monotonic()
        record.add(now, (now - exposed) * 1000, inference_ms, postprocess_ms)
    cpu_s = time.process_time() - cpu
    source.close()
    if results is not None:
        results.close()
    skipped = source.skipped if isinstance(source, PacedCamera) else 0
    return measurement(spec, record, cpu_s, {"stale": skipped} if skipped else {})


class Probe(Publisher):
    """The last publisher of a bench pipeline: notes each result's timing as the output lane hands it on; builds a
    segmentation's source-size mask, timed, as privacy and the mask API do; and with `overlay` (the outputs on),
    draws the pipeline's overlay on every result, timed, as the live page and snapshots draw it on theirs."""

    def __init__(self, record: Recorder, overlay: OverlayParams | None) -> None:
        self.record = record
        self.overlay = overlay

    def publish(self, out: Output) -> None:
        timing = out.frame.timing
        ready = out.frame.t_capture + timing["exposure_to_result"] / 1000
        self.record.add(ready, timing["exposure_to_result"], timing["inference"], timing.get("postprocess"))
        segments = out.frame.kind_results.get(SEGMENTS)
        if isinstance(segments, Segments):
            started = time.perf_counter()
            segments.mask_at_source()
            self.record.mask.append((time.perf_counter() - started) * 1000)
        if self.overlay is not None:
            started = time.perf_counter()
            draw(out.frame, self.overlay, 0.0)
            self.record.overlay.append((time.perf_counter() - started) * 1000)


def output_overrides(workdir: Path, port: int) -> list[str]:
    """The outputs of `outputs on`: overlay (the pipeline's own), JSON lines, snapshots and the live page."""
    return ["jsonl.enabled=true", f"jsonl.path={workdir / 'results.jsonl'}", "snapshots.enabled=true",
            f"snapshots.dir={workdir / 'snapshots'}", "http.enabled=true", f"http.port={port}"]


def run_pipeline(spec: RunSpec, workdir: Path) -> dict:
    """smartcam's three lanes, built as `run` builds them; with the outputs on, the parent watches the live page.
    `pipeline` runs with motion gating off, `gated` with it on and for `spec.frames` captured frames (a still
    scene may give few results)."""
    gated = spec.mode == "gated"
    overrides = [*spec.overrides, f"camera.motion.enabled={str(gated).lower()}"]
    if spec.outputs:
        overrides += output_overrides(workdir, spec.port)
    if spec.mode == "robot":
        overrides += ["udp.enabled=true", f"udp.target=127.0.0.1:{spec.udp_port}", "zmq.enabled=true",
                      f"zmq.bind=tcp://127.0.0.1:{spec.zmq_port}"]
    if spec.mode == "clips":
        overrides += ["clips.enabled=true", f"clips.dir={workdir / 'clips'}"]
    settings = load_settings(spec.pipeline, spec.config, overrides)
    record = Recorder()
    probe = Probe(record, settings.pipeline.overlay if spec.outputs else None)
    pipeline = Pipeline(settings, [*build_publishers(settings), probe],
                        camera(settings, spec) if spec.live_fps else None)
    if gated:
        threading.Thread(target=stop_after_captured, args=(pipeline, spec.frames), daemon=True).start()
    cpu = time.process_time()
    stats = pipeline.run(max_frames=None if gated else spec.frames)
    measured = measurement(spec, record, time.process_time() - cpu, stats.drop_counts(), stats.captured)
    return {**measured, "clips": clips_written(workdir / "clips")} if spec.mode == "clips" else measured


def clips_written(folder: Path) -> dict[str, int]:
    """The clips a `clips` run wrote (its MP4 files, every camera's) and their bytes."""
    videos = list(folder.glob("*/*.mp4"))
    return {"written": len(videos), "bytes": sum(video.stat().st_size for video in videos)}


def stop_after_captured(pipeline: Pipeline, frames: int) -> None:
    while pipeline.stats.captured < frames:
        time.sleep(0.01)
    pipeline.stop()


def measure(spec: RunSpec) -> dict:
    settings = load_settings(spec.pipeline, spec.config, spec.overrides)
    with tempfile.TemporaryDirectory(prefix="smartcam-bench-") as workdir:
        if spec.mode == "limit":
            return run_limit(settings, spec)
        if spec.mode == "loop":
            return run_loop(settings, spec, Path(workdir))
        return run_pipeline(spec, Path(workdir))


def spec_argument(spec: RunSpec) -> str:
    return json.dumps(asdict(spec))


def main(argv: list[str]) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    print(json.dumps(measure(RunSpec(**json.loads(argv[0])))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
