"""A network H.264 stream read through PyAV (app/sources/stream.py): an MPEG-TS made here with PyAV (B-frames, a
keyframe every 2 s) served over HTTP from 127.0.0.1 by a tiny threaded server. Demuxed once: its frames reach the
pipeline, its packets enter the ring byte for byte, and a clip of it is remuxed (its NAL units the stream's own);
the ring restarts when the stream reopens; a stream that ends, whose server goes away, or that stops sending (its
read timing out) is reopened."""

from __future__ import annotations

import http.server
import re
import threading
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest

from app.clips.recorder import Recorder
from app.clips.ring import PacketRing
from app.config import CameraConfig, load_settings
from app.config.clips import ClipsConfig
from app.frame import ARRIVAL, PRESENTATION
from app.pipeline import Pipeline
from app.scene.tracker import END, NEW
from app.sources import stream as stream_module
from app.sources.pattern import PatternSource
from app.sources.stream import StreamSource
from app.sources.video_file import VideoFileSource
from conftest import PET, Background, Collector, free_port, wait_for
from clip_video import cat_event, decoded_frames, make_h264, packets_of

FRAMES = 60  # 6 s at 10 fps


class Served:
    """`data` served as a stream at `url`, each request counted: whole, with its length (the stream ends), or with
    `hold` with no length, the connection held open after the data until the server stops (a camera that stops
    sending but keeps its connection)."""

    def __init__(self, data: bytes, port: int | None = None, hold: bool = False,
                 content_type: str = "video/mp2t") -> None:
        self.data, self.hold, self.content_type = data, hold, content_type
        self.requests = 0
        self.stopped = threading.Event()
        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", served.content_type)
                if not served.hold:
                    self.send_header("Content-Length", str(len(served.data)))
                self.end_headers()
                self.wfile.write(served.data)
                self.wfile.flush()
                if served.hold:
                    served.stopped.wait()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port or free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/camera.ts"

    def __enter__(self) -> Served:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()


def nal_units(data: bytes, length_prefixed: bool) -> list[bytes]:
    """The NAL units of an H.264 access unit: Annex B (start codes, as MPEG-TS and RTSP carry it) or MP4's
    4-byte lengths."""
    if not length_prefixed:
        return [unit for unit in re.split(b"\x00\x00\x00\x01|\x00\x00\x01", data) if unit]
    units, at = [], 0
    while at < len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        units.append(data[at + 4:at + 4 + size])
        at += 4 + size
    return units


@pytest.fixture(scope="module")
def camera_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_h264(tmp_path_factory.mktemp("stream") / "camera.ts", FRAMES / 10, 99, 99)


def test_an_h264_stream_is_demuxed_once_into_frames_and_the_ring_and_its_clip_keeps_its_bytes(tmp_path, camera_ts):
    camera = [data for data, *_ in packets_of(camera_ts)]
    with Served(camera_ts.read_bytes()) as server:
        source = StreamSource(CameraConfig(source=server.url), server.url)
        ring = source.ring = PacketRing(keep_s=100)
        source.open()
        frames, positions = [], []
        with pytest.raises(OSError, match="the stream ended"):
            while True:
                frames.append(source.read())
                positions.append(source.position_s)
        decoded = decoded_frames(camera_ts)
        assert positions == sorted(seconds for *_, seconds in packets_of(camera_ts))  # each frame's own pts
        assert source.fills_ring and len(frames) == FRAMES  # every frame of the stream, each once, in order
        assert all(np.array_equal(frame.image, image) for frame, image in zip(frames, decoded, strict=True))
        held = ring.after(0)
        assert [packet.data for _, packet in held] == camera  # the stream's own packets, in order, byte for byte

        written: list[Path] = []
        recorder = Recorder(ClipsConfig(enabled=True, pre_roll_s=1, post_roll_s=1), ring, tmp_path, "cam",
                            written.append, lambda what, exc: pytest.fail(f"{what}: {exc}"))
        seen, gone = frames[30].t_capture, frames[40].t_capture
        assert seen is not None and gone is not None
        recorder.take([cat_event(NEW, 1, seen)], seen)
        recorder.take([cat_event(END, 1, seen, gone)], gone)
        recorder.close()
        assert len(written) == 1
        with av.open(str(written[0])) as clip:
            remuxed = [bytes(packet) for packet in clip.demux(video=0) if packet.size]
        first = camera.index(next(data for data in camera if nal_units(data, False) == nal_units(remuxed[0], True)))
        assert [nal_units(data, True) for data in remuxed] == [nal_units(data, False)
                                                               for data in camera[first:first + len(remuxed)]]
        assert len(remuxed) >= 20  # from the keyframe at 2 s (3 s less the pre-roll) to 4 s and the post-roll

        source.open()  # the stream again: the ring starts again, an index skipped
        source.read()
        again = ring.after(0)
        assert again[0][0] > held[-1][0] + 1 and again[0][1].data == camera[0]
        source.close()


def test_a_stream_that_ends_or_whose_server_goes_is_reopened_and_its_frames_reach_the_pipeline(camera_ts):
    port = free_port()
    collect = Collector()
    url = f"http://127.0.0.1:{port}/camera.ts"
    viewer = Pipeline(load_settings("detect", None, [*PET, f"camera.source={url}",
                                                     "camera.reconnect.initial_delay_s=0.05",
                                                     "camera.reconnect.max_delay_s=0.2"]), [collect])
    with Background(viewer) as viewing:
        with Served(camera_ts.read_bytes(), port) as server:
            wait_for(lambda: server.requests >= 3, "the stream read to its end and opened again, twice", 30)
            assert collect.results[0]["size"] == [320, 240] and viewer.source.live
            assert viewer.stats.drops["source_error"] >= 2  # each end a reconnect
        failed = viewer.stats.drops["source_error"]  # the server is gone: the source is retried
        wait_for(lambda: viewer.stats.drops["source_error"] >= failed + 2, "attempts at a server that is gone", 30)
        seen = collect.count
        with Served(camera_ts.read_bytes(), port):  # the camera comes back on the same address
            wait_for(lambda: collect.count > seen, "frames again after the stream came back", 30)
            assert viewing.alive


def test_a_stream_that_stops_sending_times_out_and_is_reopened(monkeypatch, camera_ts):
    monkeypatch.setattr(stream_module, "READ_TIMEOUT_S", 0.5)
    collect = Collector()
    with Served(camera_ts.read_bytes(), hold=True) as server:
        viewer = Pipeline(load_settings("detect", None, [*PET, f"camera.source={server.url}",
                                                         "camera.reconnect.initial_delay_s=0.05"]), [collect])
        with Background(viewer):
            wait_for(lambda: server.requests >= 2, "the stalled stream reopened", 30)
            assert viewer.stats.drops["source_error"] >= 1 and collect.count >= 1


MJPEG = "multipart/x-mixed-replace; boundary=frame"


def mjpeg_stream(frames: int, damaged: tuple[int, ...] = ()) -> bytes:
    """`frames` JPEGs of the pattern as MJPEG over HTTP sends them (multipart/x-mixed-replace; boundary=frame), those
    numbered in `damaged` replaced by bytes that are no JPEG inside a JPEG's markers."""
    pattern = PatternSource(CameraConfig(source="pattern", width=320, height=240))
    parts = [b"\xff\xd8" + bytes(range(256)) * 8 + b"\xff\xd9" if n in damaged
             else cv2.imencode(".jpg", pattern.render(n))[1].tobytes() for n in range(frames)]
    return b"".join(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg)
                    for jpeg in parts)


def test_a_stream_or_file_of_another_codec_leaves_its_ring_to_the_encoder(tmp_path):
    """MJPEG over HTTP (read by PyAV too) and an MPEG-4 Part 2 file: not what a browser plays in an MP4, so their
    packets do not go into the ring; the capture lane encodes their frames (tests/test_clips_raw.py)."""
    with Served(mjpeg_stream(5), content_type=MJPEG) as server:
        stream = StreamSource(CameraConfig(source=server.url), server.url)
        file = tmp_path / "mpeg4.mp4"
        writer = cv2.VideoWriter(str(file), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (320, 240))
        writer.write(np.zeros((240, 320, 3), np.uint8))
        writer.release()
        for source in (stream, VideoFileSource(CameraConfig(source=str(file)), str(file))):
            ring = source.ring = PacketRing(keep_s=100)
            source.open()
            assert source.read().image.shape == (240, 320, 3)
            source.close()
            assert not source.fills_ring and ring.template is None and ring.after(0) == []


def test_a_packet_that_does_not_decode_is_skipped_and_counted():
    with Served(mjpeg_stream(6, damaged=(2,)), content_type=MJPEG) as server:
        source = StreamSource(CameraConfig(source=server.url), server.url)
        source.open()
        frames = []
        with pytest.raises(OSError, match="the stream ended"):
            while True:
                frames.append(source.read())
    assert len(frames) == 5 and source.decode_errors == 1


def test_a_stream_whose_pts_keep_time_with_its_arrivals_is_stamped_at_its_pts(monkeypatch, camera_ts):
    """Frames that arrive as their pts say (a clock stepping 0.1 s a read, 20 ms behind): once the pts have kept
    time for two windows of the clock, each frame is stamped at its pts on the monotonic clock."""
    arrivals = iter(1000.02 + n / 10 for n in range(FRAMES))
    monkeypatch.setattr(stream_module, "time", SimpleNamespace(monotonic=lambda: next(arrivals)))
    with Served(camera_ts.read_bytes()) as server:
        source = StreamSource(CameraConfig(source=server.url), server.url)
        source.open()
        frames = [(source.read(), source.position_s) for _ in range(FRAMES)]
        source.close()
    presented = [(frame.t_capture, pts) for frame, pts in frames if frame.stamp == PRESENTATION]
    assert len(presented) >= FRAMES // 2 and frames[0][0].stamp == ARRIVAL
    # the pts on the monotonic clock: each frame's pts plus the one delay of them all (arrival less pts)
    delay = round(1000.02 - frames[0][1], 6)
    assert {round(stamp - pts, 6) for stamp, pts in presented if stamp is not None} == {delay}
