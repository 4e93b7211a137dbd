"""A network stream as the source: OpenCV/FFmpeg reading a real MJPEG-over-HTTP stream (smartcam's own
`/stream.mjpg`), and reopening it with backoff when the stream goes away and comes back."""

from __future__ import annotations

from app.config import load_settings
from app.pipeline import Pipeline
from conftest import PET, Background, Collector, free_port, network_camera, wait_for


def test_an_http_stream_is_read_and_reopened_when_it_comes_back():
    port = free_port()
    collect = Collector()
    viewer = Pipeline(load_settings("detect", None, [*PET, f"camera.source=http://127.0.0.1:{port}/stream.mjpg",
                                                     "camera.reconnect.initial_delay_s=0.2"]), [collect])
    with network_camera(port) as camera:
        wait_for(lambda: camera.pipeline.stats.processed > 0, "the network camera", 30)
        with Background(viewer) as viewing:
            wait_for(lambda: collect.count >= 5, "frames from the stream", 30)
            assert collect.results[0]["size"] == [320, 240] and viewer.source.live

            camera.stop(timeout=5)
            wait_for(lambda: viewer.stats.drops["source_error"] >= 1, "the viewer noticing the stream is gone", 30)
            seen = collect.count
            with network_camera(port):  # the camera comes back on the same address
                wait_for(lambda: collect.count > seen + 5, "frames again after the stream came back", 30)
                assert viewing.alive
