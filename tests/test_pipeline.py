"""The runner: the three lanes, the two hand-offs, drops by reason, reconnects, shutdown, the summary line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import numpy as np
import pytest

from app.config import load_settings
from app.frame import Frame
from app.handoff import Handoff
from app.pipeline import Pipeline
from app.sources.base import Source
from conftest import CAT_BREEDS, PET, PET_MODEL, PROJECT, Collector, FakeCamera, free_port, pet_pipeline, wait_for


def _pipeline(*overrides: str, publishers=(), source: Source | None = None) -> Pipeline:
    settings = load_settings("detect", None, [*PET, *overrides])
    return Pipeline(settings, list(publishers), source)


def test_handoff_drops_oldest_and_counts():
    drops = []
    slot: Handoff[int] = Handoff(1, lossless=False, on_drop=lambda: drops.append(1))
    for i in range(5):
        assert slot.put(i)
    assert slot.get() == 4 and len(drops) == 4
    slot.close()
    assert slot.get() is None and not slot.put(9)


def test_lossless_handoff_waits_for_the_consumer():
    queue: Handoff[int] = Handoff(2, lossless=True, on_drop=lambda: None)
    produced = []

    def produce():
        for i in range(6):
            queue.put(i)
            produced.append(i)
        queue.close()

    producer = threading.Thread(target=produce)
    producer.start()
    wait_for(lambda: len(produced) >= 2, "two items into the queue", 10)
    time.sleep(0.2)  # time for a third put, if it did not wait
    assert len(produced) == 2  # blocked on the full queue, nothing dropped
    received = []
    while (item := queue.get()) is not None:
        received.append(item)
    producer.join()
    assert received == list(range(6))


def test_file_source_processes_every_frame_up_to_max_frames(cat_clip):
    collect = Collector()
    stats = _pipeline(f"camera.source={cat_clip}", publishers=[collect]).run(max_frames=60)
    assert stats.processed == 60 and len(collect.results) == 60 and collect.closed
    assert [r["seq"] for r in collect.results] == list(range(1, 61))
    assert sum(stats.drops.values()) == 0
    with_cat = [r for r in collect.results if r["detections"] and r["detections"][0]["label"] in CAT_BREEDS]
    assert len(with_cat) >= 45


def test_frames_are_fitted_to_the_model_in_the_capture_lane(cat_clip, monkeypatch):
    """The resize runs on the capture thread, beside the model's invoke(), not after it in the inference lane."""
    from app.stages.preprocess import Preprocess

    fitted_on: Counter[str] = Counter()
    scale = Preprocess.scale

    def counted(self, frame):
        fitted_on[threading.current_thread().name] += 1
        return scale(self, frame)

    monkeypatch.setattr(Preprocess, "scale", counted)
    collect = Collector()
    _pipeline(f"camera.source={cat_clip}", publishers=[collect]).run(max_frames=20)
    assert fitted_on["capture-cam0"] >= 20 and set(fitted_on) == {"capture-cam0"}
    assert all(r["detections"] for r in collect.results)


def test_live_source_drops_stale_frames_and_counts_them():
    stopper = Collector()
    pipeline = _pipeline("camera.source=pattern", "camera.fps=1000", "camera.width=320", "camera.height=240",
                         "camera.motion.enabled=false", publishers=[stopper])  # every frame goes to the slot
    stopper.at[10] = pipeline.stop  # stopped from another thread (the output lane) once 10 results are out
    safety_net = threading.Timer(60, pipeline.stop)
    safety_net.start()
    stats = pipeline.run()
    assert not safety_net.finished.is_set(), "not stopped after 10 results"
    safety_net.cancel()
    assert stats.processed > 0 and stats.drops["stale"] > 0
    in_flight = stats.captured - stats.processed - stats.drops["stale"]
    # in hand when it stopped: one in the slot, one being processed, one being handed over; nothing piles up
    assert 0 <= in_flight <= 3


def test_a_camera_that_fails_is_reopened_and_the_run_goes_on():
    camera = FakeCamera(pause=0.01, fail_reads={5})  # unplugged at its 5th read, back on the next open
    stats = _pipeline("camera.reconnect.initial_delay_s=0.05", source=camera).run(max_frames=10)
    assert stats.processed == 10
    assert camera.opens == 2 and stats.drops["source_error"] == 1


def test_every_stage_is_timed_and_the_summary_says_it_all(cat_clip):
    collect = Collector()
    stats = _pipeline(f"camera.source={cat_clip}", publishers=[collect]).run(max_frames=5)
    assert set(collect.results[0]["timing_ms"]) == {"preprocess", "inference", "postprocess", "track",
                                                    "exposure_to_result"}
    summary = stats.summary()
    for word in ("captured", "processed 5", "dropped 0", "fps", "inference", "p50", "p95"):
        assert word in summary


def test_a_failing_publisher_stops_the_run_with_its_error(cat_clip):
    class Broken(Collector):
        def publish(self, out):
            raise OSError("disk full")

    broken = Broken()
    pipeline = _pipeline(f"camera.source={cat_clip}", publishers=[broken])
    try:
        pipeline.run(max_frames=5)
    except OSError as exc:
        assert "disk full" in str(exc)
    else:
        raise AssertionError("the publisher's failure was swallowed")
    assert broken.closed


@pytest.mark.parametrize("outputs", ["jsonl", "all"])
def test_sigint_stops_within_two_seconds_with_outputs_flushed(tmp_path, outputs):
    """With every output on and their peers gone (no broker, no webhook receiver), SIGINT still ends the run
    within 2 s, and what was written is whole."""
    out = tmp_path / "results.jsonl"
    every_output = [] if outputs == "jsonl" else [
        "mqtt.enabled=true", "mqtt.host=127.0.0.1", f"mqtt.port={free_port()}", "http.enabled=true",
        "http.port=0", "snapshots.enabled=true", f"snapshots.dir={tmp_path / 'snapshots'}", "webhooks.enabled=true",
        f"webhooks.urls=[http://127.0.0.1:{free_port()}/hook]"]
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "--pipeline", "detect", "--source", "pattern",
         *[arg for override in [*PET, "camera.fps=30", *every_output] for arg in ("--set", override)],
         "--output", f"jsonl:{out}"],
        cwd=PROJECT, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 5, "five results written", 60)
    except AssertionError:
        process.kill()
        raise AssertionError(f"no five results: {process.communicate()[1][-2000:]}") from None
    process.send_signal(signal.SIGINT)
    signalled = time.monotonic()
    _, stderr = process.communicate(timeout=10)
    assert time.monotonic() - signalled < 2.0, stderr
    assert process.returncode == 0, stderr
    lines = out.read_text().splitlines()
    assert len(lines) >= 5 and all(json.loads(line)["pipeline"] == "detect" for line in lines)  # every line whole
    assert "captured" in stderr and "processed" in stderr


def test_filter_keeps_only_the_chosen_labels(tmp_path, cat_clip):
    """The filtered run keeps exactly the unfiltered run's detections of the chosen label, frame by frame."""
    def detections(filter: dict | None = None) -> list[list[dict]]:
        collect = Collector()
        pipeline_file = pet_pipeline(tmp_path, postprocess={"min_score": 0.1}, filter=filter)
        Pipeline(load_settings(str(pipeline_file), None, [f"camera.source={cat_clip}"]), [collect]).run(max_frames=20)
        return [r["detections"] for r in collect.results]

    everything = detections()
    labels = Counter(d["label"] for frame in everything for d in frame)
    chosen = labels.most_common(1)[0][0]
    assert len(labels) > 1, labels  # something for the filter to remove
    assert detections({"labels": [chosen]}) == [[d for d in frame if d["label"] == chosen] for frame in everything]


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_lores_frames_skip_the_resize_when_stretching(resize):
    """A camera that delivers the whole frame at model size (picamera2 lores) is used as is when stretching,
    which is what its scaler did; letterbox keeps its own geometry from the main frame."""
    from app.config import PreprocessParams
    from app.model.manifest import Labels
    from app.model.runtime import load_model
    from app.stages.base import StageContext
    from app.stages.preprocess import Preprocess

    model = load_model(PET_MODEL)
    stage = Preprocess(PreprocessParams(resize=resize))
    stage.start(StageContext(model, Labels()))
    lores = np.full((300, 300, 3), 77, np.uint8)
    frame = stage.process(Frame(np.zeros((720, 1280, 3), np.uint8), 1, "test", lores=lores))
    assert np.all(model.input_buffer() == 77) == (resize == "stretch")
    assert frame is not None and frame.geometry is not None
    assert (frame.geometry.scale_x, frame.geometry.offset_y == 0) == ((1280, True) if resize == "stretch"
                                                                      else (1280, False))
