"""A soak: 5,000 frames with every output on (JSON lines, MQTT, HTTP with an MJPEG client, snapshots, webhooks),
events on every other frame. Memory stays flat after warm-up, and threads and open files are back to where they
started once the run has ended."""

from __future__ import annotations

import contextlib
import gc
import http.server
import os
import threading
import urllib.request
from pathlib import Path

from app.config import load_settings
from app.pipeline import Pipeline
from app.outputs import build_publishers
from app.outputs.base import Output, Publisher
from conftest import BLANK, IMAGES, MODELS, Broker, FakeCamera, free_port, imread, wait_for

FRAMES = 5_000
WARM_UP = 1_000
MAX_GROWTH_MB = 10


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def describe_files() -> list[str]:
    """What each open file descriptor is (for the message of a failure)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor listdir itself used is gone
            found.append(f"{fd}: {os.readlink(f'/proc/self/fd/{fd}')}")
    return found


class MemoryAfter(Publisher):
    """Notes the process's RSS when the n-th frame reaches the output lane (and keeps nothing else)."""

    def __init__(self, frames: int) -> None:
        self.frames, self.seen, self.rss_mb = frames, 0, 0.0

    def publish(self, out: Output) -> None:
        self.seen += 1
        if self.seen == self.frames:
            self.rss_mb = rss_mb()


class Accepting(http.server.BaseHTTPRequestHandler):
    """A webhook receiver that takes every POST."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Not logged."""


def watch_stream(port: int, stop: threading.Event, received: list[int]) -> None:
    """One MJPEG client, reading what the stream sends until told to stop."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stream.mjpg", timeout=30) as stream:
        while not stop.is_set() and (chunk := stream.read(65536)):
            received.append(len(chunk))


def test_five_thousand_frames_with_every_output_on_leak_nothing(tmp_path, broker: Broker):
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Accepting)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    threads, files = threading.active_count(), open_files()
    port = free_port()
    settings = load_settings("face", None, [
        f"stages.inference.model={MODELS / 'face_detection_short_range.tflite'}", "publish.appear_frames=1",
        "publish.clear_frames=1", "jsonl.enabled=true", f"jsonl.path={tmp_path / 'results.jsonl'}",
        "mqtt.enabled=true", "mqtt.host=127.0.0.1", f"mqtt.port={broker.port}", "mqtt.publish_results=true",
        "http.enabled=true", f"http.port={port}", "snapshots.enabled=true", f"snapshots.dir={tmp_path / 'snaps'}",
        "snapshots.cooldown_s=1", "snapshots.max_files=20", "webhooks.enabled=true",
        f"webhooks.urls=[http://127.0.0.1:{receiver.server_address[1]}/hook]"])
    warm = MemoryAfter(WARM_UP)
    camera = FakeCamera([imread(IMAGES / "grace_hopper.bmp"), BLANK], pause=0.0)
    pipeline = Pipeline(settings, [warm, *build_publishers(settings)], source=camera)
    stop_watching, received = threading.Event(), list[int]()
    done = threading.Thread(target=pipeline.run, kwargs={"max_frames": FRAMES}, daemon=True)
    done.start()
    wait_for(lambda: warm.seen > 0, "the first frame", 60)
    watcher = threading.Thread(target=watch_stream, args=(port, stop_watching, received), daemon=True)
    watcher.start()
    done.join(900)
    assert not done.is_alive(), "the run did not end"
    end_mb = rss_mb()
    stop_watching.set()
    watcher.join(30)
    receiver.shutdown()
    receiver.server_close()

    processed, drops = pipeline.stats.processed, pipeline.stats.drop_counts()
    del pipeline, done  # what the run held (the interpreter, the MQTT client) goes with it
    gc.collect()
    assert processed == FRAMES
    assert warm.rss_mb and sum(received) > 0  # warmed up, and the stream client really was served
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    faces = sum('"label":"face"' in line for line in lines)
    assert len(lines) > FRAMES // 2 and faces > len(lines) // 4  # a face came and went all along
    assert list((tmp_path / "snaps").glob("*.jpg"))
    print(f"RSS {warm.rss_mb:.1f} MB after {WARM_UP} frames, {end_mb:.1f} MB after {FRAMES}; "
          f"drops {drops}")
    assert end_mb - warm.rss_mb < MAX_GROWTH_MB
    wait_for(lambda: threading.active_count() <= threads,
             lambda: f"threads back to {threads}: {[t.name for t in threading.enumerate()]}", 30)
    wait_for(lambda: open_files() <= files, lambda: f"open files back to {files}: {describe_files()}", 30)
