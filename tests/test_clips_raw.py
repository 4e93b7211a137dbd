"""Clips of sources that give raw frames (the pattern, images; V4L2 and MJPEG cameras alike): their frames encoded
to H.264 into the camera's ring (app/clips/encoder.py), a clip cut from it whose frames decode, in order; the
board's encoder tried first and libx264 taken, said once, where it does not open."""

from __future__ import annotations

import json
import logging
import sys
import time
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import av
import numpy as np
import pytest

from app.clips.encoder import AnnexBFeed, RingEncoder
from app.clips.recorder import Recorder
from app.clips.ring import PacketRing
from app.clips.writer import ClipWriter
from app.config import CameraConfig
from app.config.clips import ClipsConfig
from app.frame import BGR
from app.metrics import Stats
from app.outputs import build_publishers
from app.outputs.base import PublishContext
from app.outputs.http import HttpPublisher
from app.pipeline import Pipeline
from app.scene.tracker import END, NEW
from app.sources import auto
from app.sources import picamera2 as picamera2_source
from app.sources.pattern import PatternSource
from app.sources.picamera2 import Picamera2Source
from app.sources.video_file import VideoFileSource
from conftest import CAT_BREEDS, IMAGES, free_port
from browser import page_value
from clip_video import cat_event, clip_settings, decoded_frames, make_h264
from fake_picamera2 import FakePicamera2

FPS = 10


def test_the_pattern_encoded_makes_a_clip_of_its_frames_in_order(tmp_path):
    """120 frames of the pattern at 10 fps, an object seen from 5 to 7 s: one clip, from the keyframe before
    the pre-roll (a keyframe every 2 s) to the post-roll after, each of its frames the pattern's frame of that
    moment (the nearest of all the pattern's frames)."""
    pattern = PatternSource(CameraConfig(source="pattern", width=320, height=240, fps=FPS))
    ring = PacketRing(keep_s=9)
    encoder = RingEncoder(ring, FPS, "cam")
    written: list[Path] = []
    recorder = Recorder(ClipsConfig(enabled=True, pre_roll_s=2, post_roll_s=2), ring, tmp_path, "cam",
                        written.append, lambda what, exc: pytest.fail(f"{what}: {exc}"))
    rendered = [pattern.render(n) for n in range(120)]
    for n, image in enumerate(rendered):
        now = n / FPS
        encoder.encode(image, BGR, now)
        if n == 50:
            recorder.take([cat_event(NEW, 1, now)], now)
        if n == 70:
            recorder.take([cat_event(END, 1, 5.0, now)], now)
        recorder.pump()
    recorder.close()
    assert len(written) == 1 and encoder.codec == "libx264"
    frames = decoded_frames(written[0])
    nearest = [int(np.argmin([np.abs(frame.astype(np.int16) - image).mean() for image in rendered]))
               for frame in frames]
    first = nearest[0]
    assert nearest == list(range(first, first + len(frames)))  # every frame, in order, none twice
    assert 10 <= first <= 30 and first + len(frames) - 1 >= 90  # pre-roll (+ a GOP) before 5 s, post-roll after 7 s
    sidecar = json.loads(written[0].with_suffix(".json").read_text())
    assert sidecar["start_stamp"] == pytest.approx(first / FPS)  # the frames' stamps are the clip's times


def test_without_the_boards_encoder_libx264_encodes_said_once(caplog):
    """h264_v4l2m2m does not open here (no such device): libx264 encodes, said in one line, also when the encoder
    starts again (another restarted the ring); a frame of another size is scaled to the clip's."""
    caplog.set_level(logging.INFO, logger="app.clips.encoder")
    ring = PacketRing(keep_s=100)
    encoder = RingEncoder(ring, FPS, "cam")  # h264_v4l2m2m first
    image = PatternSource(CameraConfig(source="pattern", width=320, height=240, fps=FPS)).render(0)
    for n in range(3):
        encoder.encode(image, BGR, n / FPS)
    assert ring.template is not None
    ring.restart(ring.template)  # another filled the ring meanwhile
    encoder.encode(image[::2, ::2], BGR, 0.3)
    encoder.encode(image, BGR, 0.4)
    assert encoder.codec == "libx264"
    said = [r.getMessage() for r in caplog.records if "h264_v4l2m2m" in r.getMessage()]
    assert len(said) == 1 and "does not open" in said[0]
    held = ring.after(0)
    assert len(held) == 2 and held[0][1].keyframe  # begun again from a keyframe
    template = ring.template
    assert (template.width, template.height) == (320, 240)


def test_an_image_source_with_clips_on_makes_a_clip_that_decodes_and_plays_in_chromium(tmp_path):
    """A cat photo read again and again (raw frames, stamped at their arrival) through the pet SSD and tracking:
    the run's end closes the cat's clip, encoded at the photo's size, every frame of it decoding; served by the
    HTTP output, Chromium plays it whole (readyState 4) for the sidecar's duration."""
    port = free_port()
    settings = clip_settings(tmp_path, IMAGES / "cat_720p.jpg", "camera.loop=true", "http.enabled=true",
                             f"http.port={port}")
    Pipeline(settings, build_publishers(settings)).run(max_frames=15)
    folder = tmp_path / "clips" / settings.device.camera.name
    sidecars = sorted(folder.glob("*.json"))
    assert len(sidecars) == 1, sorted(folder.iterdir()) if folder.exists() else "no clip folder"
    sidecar = json.loads(sidecars[0].read_text())
    assert set(sidecar["labels"]) <= CAT_BREEDS
    frames = decoded_frames(folder / sidecar["video"])
    assert len(frames) >= 5 and all(frame.shape == (720, 1280, 3) for frame in frames)
    http = HttpPublisher(settings.device.http)
    http.start(PublishContext(settings, Stats(), settings.pipeline.publish))
    try:
        state = "(() => { const v = document.querySelector('video'); return v && [v.readyState, v.duration]; })()"
        value = page_value(f"http://127.0.0.1:{port}/clips/{sidecar['video']}", tmp_path, state,
                           lambda v: isinstance(v, list) and v[0] == 4)
    finally:
        http.close(time.monotonic() + 5)
    assert isinstance(value, list) and value[0] == 4, value
    assert value[1] == pytest.approx(sidecar["duration_s"], abs=0.5)


def annexb_frames(count: int, keyframe_every: int) -> list[tuple[bytes, bool, int]]:
    """H.264 as a Pi's encoder gives it (picamera2's H264Encoder with repeat=True): each access unit in Annex B, SPS
    and PPS in each keyframe, timestamps in microseconds from the first frame (here 10 fps)."""
    context = av.CodecContext.create("libx264", "w")
    context.width, context.height, context.pix_fmt = 320, 240, "yuv420p"
    context.time_base = Fraction(1, 1_000_000)
    context.options = {"g": str(keyframe_every), "preset": "ultrafast", "tune": "zerolatency",
                       "x264-params": "repeat-headers=1"}
    pattern = PatternSource(CameraConfig(source="pattern", width=320, height=240, fps=FPS))
    encoded = []
    for n in range(count):
        frame = av.VideoFrame.from_ndarray(pattern.render(n), format="bgr24")
        frame.pts = n * 100_000
        encoded += [(bytes(packet), packet.is_keyframe, packet.pts or 0) for packet in context.encode(frame)]
    return encoded


def test_a_cameras_own_encoder_feeds_the_ring_from_its_first_keyframe(tmp_path):
    """What picamera2's H264Encoder hands its output (app/sources/picamera2.py), through AnnexBFeed: the ring begins
    at the first keyframe, with the stream's parameters from its SPS, and a clip of it decodes, the encoder's own
    bytes kept."""
    frames = annexb_frames(40, keyframe_every=20)
    ring = PacketRing(keep_s=100)
    feed = AnnexBFeed(ring)
    for data, keyframe, timestamp in frames[5:]:  # joined mid-GOP: up to the keyframe at frame 20, nothing
        feed.frame(data, keyframe, timestamp)
        feed.presented(timestamp, timestamp / 1e6)
    held = ring.after(0)
    assert [packet.data for _, packet in held] == [data for data, *_ in frames[20:]]
    assert ring.template is not None and (ring.template.width, ring.template.height) == (320, 240)
    assert ring.stamp(ring.seconds(held[5][1].pts)) == pytest.approx(2.5)  # frame 25's stamp, through its pts
    writer = ClipWriter(tmp_path / "clip", ring.template)
    for _, packet in held:
        writer.write(packet)
    writer.finish({})
    assert len(decoded_frames(writer.video)) == 20


class H264Encoder:
    """picamera2's H264Encoder, as far as the source uses it: its options and the first frame's timestamp."""

    def __init__(self, **options: object) -> None:
        self.options = options
        self.firsttimestamp: int | None = None


class EncodingCamera(FakePicamera2):
    """The stand-in Pi camera of tests/test_stamps.py with an encoder started on it: each request is encoded as it
    completes (`frames`, in turn), before it is handed over, as picamera2 does."""

    frames: list[tuple[bytes, bool, int]] = []

    def start_encoder(self, encoder: H264Encoder, output: object, name: str) -> None:
        self.encoding: tuple[H264Encoder, Any, str] | None = (encoder, output, name)

    def stop_encoder(self) -> None:
        self.encoding = None

    def capture_request(self, wait: float | None = None) -> Any:
        request = super().capture_request(wait)
        assert self.encoding is not None
        encoder, output, _ = self.encoding
        sensor_us = self.sensor_timestamps[-1] // 1000
        first = encoder.firsttimestamp = encoder.firsttimestamp or sensor_us
        data, keyframe, _ = self.frames[len(self.sensor_timestamps) - 1]
        output.outputframe(data, keyframe, sensor_us - first)
        return request


@pytest.fixture
def pi_encoding(monkeypatch) -> type[EncodingCamera]:
    """picamera2 at the hardware boundary, with its encoders and outputs modules."""
    outputs, encoders = ModuleType("picamera2.outputs"), ModuleType("picamera2.encoders")
    outputs.Output, encoders.H264Encoder = type("Output", (), {}), H264Encoder  # type: ignore[attr-defined]
    for name, module in (("picamera2", ModuleType("picamera2")), ("picamera2.outputs", outputs),
                         ("picamera2.encoders", encoders)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(picamera2_source, "_picamera2_class", lambda: EncodingCamera)
    monkeypatch.setattr(FakePicamera2, "made", [])
    monkeypatch.setattr(EncodingCamera, "frames", annexb_frames(3, keyframe_every=20))
    return EncodingCamera


def test_a_pi_camera_with_clips_on_feeds_its_h264_encoder_into_the_ring(pi_encoding):
    """picamera2's H264Encoder started on the main stream, a keyframe every 2 s with SPS and PPS; each frame it
    outputs goes into the ring, and each frame read is known there by its exposure stamp. A Pi's encoder itself is
    untested here."""
    source = Picamera2Source(CameraConfig(source="picamera2", fps=FPS))
    ring = source.ring = PacketRing(keep_s=100)
    source.open()
    camera = FakePicamera2.made[0]
    assert isinstance(camera, EncodingCamera) and camera.encoding is not None
    encoder, _, stream = camera.encoding
    assert source.fills_ring and stream == "main" and encoder.options == {"repeat": True, "iperiod": 20}
    captured = [source.read() for _ in pi_encoding.frames]
    source.close()
    held = ring.after(0)
    assert [packet.data for _, packet in held] == [data for data, *_ in pi_encoding.frames]
    assert camera.encoding is None  # stopped at close
    assert [ring.stamp(ring.seconds(packet.pts)) for _, packet in held] == pytest.approx(
        [frame.t_capture for frame in captured])


def test_a_pi_camera_whose_encoder_does_not_start_leaves_its_frames_to_libx264(pi_encoding, monkeypatch, caplog):
    def fails(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no encoder device")

    monkeypatch.setattr(pi_encoding, "start_encoder", fails)
    source = Picamera2Source(CameraConfig(source="picamera2", fps=FPS))
    source.ring = PacketRing(keep_s=100)
    source.open()
    source.close()
    said = [r.getMessage() for r in caplog.records if "H264Encoder does not start" in r.getMessage()]
    assert not source.fills_ring and len(said) == 1 and "no encoder device" in said[0]


def test_auto_gives_the_ring_to_the_camera_it_chooses(tmp_path, monkeypatch):
    """`source: auto`: the camera chosen at open gets the ring, and whether it fills it is the auto source's."""
    video = make_h264(tmp_path / "camera.mp4", 1, 99, 99)
    monkeypatch.setattr(auto, "choose_camera", lambda camera, lores: VideoFileSource(camera, str(video)))
    source = auto.AutoCamera(CameraConfig(source="auto"), None)
    ring = source.ring = PacketRing(keep_s=100)
    source.open()
    source.read()
    source.close()
    assert source.fills_ring and ring.template is not None and ring.after(0)[0][1].keyframe
