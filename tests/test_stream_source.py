"""A network stream as the source: OpenCV/FFmpeg reading a real MJPEG-over-HTTP stream (smartcam's own
`/stream.mjpg`), and reopening it with backoff when the stream goes away and comes back."""

from __future__ import annotations

import threading
import time

from app.config import load_settings
from app.pipeline import Pipeline
from app.publishers.http import HttpPublisher
from conftest import PET, free_port
from test_pipeline import Collect


def _camera(port: int) -> tuple[Pipeline, threading.Thread]:
    """A smartcam serving the pattern as MJPEG on `port`: the network camera of this test."""
    settings = load_settings("detect", None, [*PET, "camera.source=pattern", "camera.width=320",
                                              "camera.height=240", "http.enabled=true", f"http.port={port}"])
    camera = Pipeline(settings, [HttpPublisher(settings.device.http)])
    thread = threading.Thread(target=camera.run, daemon=True)
    thread.start()
    return camera, thread


def _wait(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_an_http_stream_is_read_and_reopened_when_it_comes_back():
    port = free_port()
    camera, camera_thread = _camera(port)
    collect = Collect()
    viewer = Pipeline(load_settings("detect", None, [*PET, f"camera.source=http://127.0.0.1:{port}/stream.mjpg",
                                                     "camera.reconnect.initial_delay_s=0.2"]), [collect])
    viewer_thread = threading.Thread(target=viewer.run, daemon=True)
    try:
        _wait(lambda: camera.stats.processed > 0, "the network camera")
        viewer_thread.start()
        _wait(lambda: len(collect.results) >= 5, "frames from the stream")
        assert collect.results[0]["size"] == [320, 240] and viewer.source.live

        camera.stop()
        camera_thread.join(5)
        _wait(lambda: viewer.stats.drops["source_error"] >= 1, "the viewer noticing the stream is gone")
        seen = len(collect.results)
        camera, camera_thread = _camera(port)  # the camera comes back on the same address
        _wait(lambda: len(collect.results) > seen + 5, "frames again after the stream came back")
        assert viewer_thread.is_alive()
    finally:
        viewer.stop()
        camera.stop()
        viewer_thread.join(5)
        camera_thread.join(5)
