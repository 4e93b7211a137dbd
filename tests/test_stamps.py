"""Frame stamps: the arithmetic of app/sources/stamps.py with given numbers, and each source's stamp from what its
hardware boundary reports: a stand-in cv2.VideoCapture giving V4L2 buffer times (CAP_PROP_POS_MSEC), a stand-in
Picamera2 giving real arrays and metadata, a video file made at run time, and a real MJPEG stream served by smartcam
on 127.0.0.1 (whose pts FFmpeg makes up)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.config import CameraConfig
from app.frame import ARRIVAL, EXPOSURE, PRESENTATION
from app.sources import opencv
from app.sources import picamera2 as picamera2_source
from app.sources.base import Captured
from app.sources.stream import StreamSource
from app.sources.video_file import VideoFileSource
from app.sources.picamera2 import Picamera2Source
from app.sources.stamps import BOUND_S, PLAUSIBLE_S, PresentationClock, device_time, exposure_start
from conftest import IMAGES, free_port, imread, network_camera, opened_v4l2, wait_for
from fake_picamera2 import FakePicamera2

CAT = imread(IMAGES / "cat_720p.jpg")
CAT_JPEG = cv2.imencode(".jpg", CAT, [cv2.IMWRITE_JPEG_QUALITY, 80])[1]

# --- device_time and exposure_start


@pytest.mark.parametrize(("t", "expected"), [
    (99.97, 99.97),  # 30 ms before the read returned
    (100.0, 100.0),  # the very moment
    (100.0 - PLAUSIBLE_S, 100.0 - PLAUSIBLE_S),
    (100.01, None),  # in the future: another clock
    (98.5, None),  # older than a camera's frame can be
    (0.0, None),  # no timestamp at all
    (1.7e9, None),  # the wall clock
])
def test_a_device_time_is_believed_only_within_the_last_second(t, expected):
    assert device_time(t, now=100.0) == expected


def test_exposure_starts_the_exposure_time_before_the_sensor_timestamp():
    metadata = {"SensorTimestamp": 99_980_000_000, "ExposureTime": 10_000, "AnalogueGain": 2.0}
    assert exposure_start(metadata, now=100.0) == pytest.approx(99.97, abs=1e-9)  # 99.98 s less 10 ms


@pytest.mark.parametrize("metadata", [
    {},
    {"ExposureTime": 10_000},
    {"SensorTimestamp": 99_980_000_000},
    {"SensorTimestamp": 103_600_000_000_000, "ExposureTime": 10_000},  # CLOCK_BOOTTIME after an hour's suspend
], ids=["none", "no timestamp", "no exposure time", "another clock"])
def test_no_exposure_start_without_a_plausible_timestamp_and_exposure_time(metadata):
    assert exposure_start(metadata, now=100.0) is None


# --- PresentationClock with given numbers


def run(clock: PresentationClock, frames: list[tuple[float, float]]) -> list[float | None]:
    """The stamps of (pts, arrival) pairs, in order."""
    return [clock.stamp(pts, arrival) for pts, arrival in frames]


def stream(seconds: float, fps: float = 10.0, pts_rate: float = 1.0, latency: float = 0.05, start: float = 500.0,
           jitter: tuple[float, ...] = (0.0, 0.02, 0.007, 0.031)) -> list[tuple[float, float]]:
    """(pts, arrival) of a stream at `fps` whose frame k has pts k / fps * pts_rate and arrives `latency` plus a
    repeating jitter after it was presented at start + k / fps."""
    return [(k / fps * pts_rate, start + k / fps + latency + jitter[k % len(jitter)])
            for k in range(round(seconds * fps))]


def test_a_stream_that_keeps_time_is_stamped_at_its_pts_plus_the_least_delay():
    frames = stream(4.0)
    stamps = run(PresentationClock(), frames)
    trusted = [k for k, t in enumerate(stamps) if t is not None]
    # none in the first window (nothing to compare it with), all from the end of the second (it agreed)
    assert trusted == list(range(21, len(frames)))
    for k in trusted:  # presented at 500 + k/10, stamped at pts + 500.05: the latency, never the jitter
        stamp = stamps[k]
        assert stamp is not None and stamp == pytest.approx(500.05 + k / 10, abs=1e-9) and stamp <= frames[k][1]


def test_a_frame_that_came_late_keeps_the_time_its_pts_gives():
    frames = stream(4.0)
    pts, arrival = frames[-1]
    frames[-1] = (pts, arrival + 0.8)  # the network stalled
    stamps = run(PresentationClock(), frames)
    assert stamps[-1] == pytest.approx(500.05 + pts, abs=1e-9)


def test_a_first_frame_that_came_late_does_not_stamp_later_frames_after_their_arrival():
    frames = stream(4.0)
    frames[0] = (0.0, frames[0][1] + 0.5)
    stamps = run(PresentationClock(), frames)
    assert all(t is None or t <= arrival for t, (_, arrival) in zip(stamps, frames, strict=True))
    assert stamps[-1] == pytest.approx(500.05 + frames[-1][0], abs=1e-9)


@pytest.mark.parametrize("pts_rate", [0.4, 2.5], ids=["10 fps as 25 (HTTP MJPEG)", "25 fps as 10"])
def test_pts_that_do_not_keep_time_give_no_stamp(pts_rate):
    assert run(PresentationClock(), stream(10.0, pts_rate=pts_rate)) == [None] * 100


def test_a_frame_that_came_sooner_than_any_before_is_stamped_at_its_arrival_not_after():
    frames = stream(4.0)
    pts, arrival = frames[35]
    frames[35] = (pts, arrival - 0.04)  # 9 ms sooner after its presentation than any frame so far
    stamps = run(PresentationClock(), frames)
    assert stamps[35] == frames[35][1]
    least_delay = frames[35][1] - pts
    assert stamps[36] == pytest.approx(frames[36][0] + least_delay, abs=1e-9)  # its delay is the least now


def test_pts_that_do_not_advance_are_no_presentation_time():
    frames = [(0.0, 500.0 + k / 10) for k in range(50)]  # FFmpeg reports 0 for a frame without pts
    assert run(PresentationClock(), frames) == [None] * 50
    frames = stream(4.0)
    frames.append((frames[-1][0], frames[-1][1] + 0.1))  # the last pts again: not the same instant as the last frame
    stamps = run(PresentationClock(), frames)
    assert stamps[-2] is not None and stamps[-1] is None


@pytest.mark.parametrize(("pts_shift", "late"), [(-4.0, 0.0), (-0.5, 0.0), (0.0, BOUND_S + 1)],
                         ids=["pts start again", "pts go back", "frames come late"])
def test_a_pts_jump_anchors_the_clock_afresh(pts_shift, late):
    """Four seconds of a stream, then four more whose pts went back or which arrive more than BOUND_S later than
    their pts say (a reconnect inside FFmpeg): a new anchor, no stamp until the new series has kept time, then its
    pts plus its own least delay."""
    clock = PresentationClock()
    assert run(clock, stream(4.0))[-1] is not None
    after = [(pts + 4.0 + pts_shift, arrival + 4.0 + late) for pts, arrival in stream(4.0)]
    stamps = run(clock, after)
    assert stamps[0] is None
    least_delay = after[0][1] - after[0][0]  # its first frame's: no jitter
    assert stamps[-1] == pytest.approx(after[-1][0] + least_delay, abs=1e-9)


def test_reset_forgets_the_stream():
    clock = PresentationClock()
    run(clock, stream(4.0))
    clock.reset()
    assert clock.stamp(4.0, 600.0) is None


# --- V4L2Source against a stand-in for cv2.VideoCapture


class BufferCapture:
    """cv2.VideoCapture's V4L2 backend at the hardware boundary: each read gives the cat (decoded, or the JPEG as it
    came with CAP_PROP_CONVERT_RGB off) and sets CAP_PROP_POS_MSEC to `clock() - age` in ms, the dequeued buffer's
    timestamp; `clock` is the monotonic one unless a test gives another, `ages` repeat."""

    ages: list[float] = [0.03]
    clock = staticmethod(time.monotonic)
    opened: list[BufferCapture] = []

    def __init__(self, target: str, api: int, params: list[int]) -> None:
        self.props: dict[int, float] = {cv2.CAP_PROP_CONVERT_RGB: 1, cv2.CAP_PROP_FPS: 30,
                                        cv2.CAP_PROP_FOURCC: cv2.VideoWriter.fourcc(*"MJPG")}
        self.given: list[float] = []  # every POS_MSEC given, in ms
        BufferCapture.opened.append(self)

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return True

    def set(self, prop: int, value: float) -> bool:
        if prop == cv2.CAP_PROP_FOURCC:
            return False
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray]:
        position = (self.clock() - self.ages[len(self.given) % len(self.ages)]) * 1000
        self.given.append(position)
        self.props[cv2.CAP_PROP_POS_MSEC] = position
        return True, CAT if self.props[cv2.CAP_PROP_CONVERT_RGB] else CAT_JPEG.reshape(1, -1)

    def release(self) -> None:
        pass


@pytest.fixture
def buffers(monkeypatch) -> Iterator[type[BufferCapture]]:
    monkeypatch.setattr(opencv.cv2, "VideoCapture", BufferCapture)
    monkeypatch.setattr(BufferCapture, "opened", [])
    yield BufferCapture


@pytest.mark.parametrize("camera", [{}, {"fourcc": "MJPG", "decode_scale": 2}], ids=["decoded by OpenCV", "raw MJPEG"])
def test_a_v4l2_frame_is_stamped_at_its_buffers_timestamp(buffers, camera):
    source = opened_v4l2(**camera)
    frames = [source.read() for _ in range(3)]
    assert frames[0].image.shape == ((360, 640, 3) if camera else CAT.shape)
    for frame, given in zip(frames, buffers.opened[0].given, strict=True):
        assert frame.stamp == EXPOSURE and frame.t_capture == given / 1000


@pytest.mark.parametrize(("clock", "age"), [
    (time.monotonic, -0.5),  # in the future
    (time.monotonic, PLAUSIBLE_S + 1),  # a buffer older than any a camera queues
    (time.time, 0.03),  # a driver on the wall clock
    (lambda: 0.0, 0.0),  # no timestamp at all
], ids=["future", "stale", "wall clock", "none"])
def test_an_implausible_buffer_time_leaves_the_frame_to_be_stamped_at_arrival(buffers, monkeypatch, clock, age):
    monkeypatch.setattr(buffers, "clock", staticmethod(clock))
    monkeypatch.setattr(buffers, "ages", [age])
    for camera in ({}, {"fourcc": "MJPG", "decode_scale": 2}):
        captured = opened_v4l2(**camera).read()
        assert captured.t_capture is None and captured.stamp == ARRIVAL


def test_an_undecodable_frame_does_not_lend_its_stamp_to_the_next(buffers, monkeypatch):
    frames, read = iter([CAT_JPEG[: CAT_JPEG.size // 2], CAT_JPEG]), buffers.read
    monkeypatch.setattr(buffers, "read", lambda self: (read(self)[0], next(frames).reshape(1, -1)))
    source = opened_v4l2(fourcc="MJPG", decode_scale=2)
    captured = source.read()
    assert source.decode_errors == 1
    assert captured.t_capture == buffers.opened[0].given[1] / 1000


# --- Picamera2Source against a stand-in for Picamera2


@pytest.fixture
def pi_camera(monkeypatch) -> Iterator[type[FakePicamera2]]:
    monkeypatch.setattr(picamera2_source, "_picamera2_class", lambda: FakePicamera2)
    monkeypatch.setattr(FakePicamera2, "made", [])
    yield FakePicamera2


def pi_read(lores: bool = True) -> Captured:
    source = Picamera2Source(CameraConfig(source="picamera2"), (320, 320) if lores else None)
    source.open()
    try:
        return source.read()
    finally:
        source.close()


def test_a_pi_camera_frame_is_stamped_at_the_start_of_its_exposure(pi_camera):
    captured = pi_read()
    camera = pi_camera.made[0]
    assert captured.stamp == EXPOSURE
    assert captured.t_capture == (camera.sensor_timestamps[0] - 10_000_000) / 1e9  # less the 10 ms exposure
    assert captured.image.shape == CAT.shape and captured.lores is not None and captured.lores.shape == (320, 320, 3)
    assert camera.released == 1  # image, lores and metadata from the one request, which goes back once


@pytest.mark.parametrize(("metadata", "age"), [
    ({}, 0.02),
    ({"ExposureTime": 10_000}, 0.02),
    (None, 3600.0),  # SensorTimestamp an hour ago: not CLOCK_MONOTONIC (CLOCK_BOOTTIME after a suspend)
], ids=["no metadata", "no timestamp", "another clock"])
def test_a_pi_camera_frame_without_a_usable_timestamp_is_stamped_at_arrival(pi_camera, monkeypatch, metadata, age):
    monkeypatch.setattr(pi_camera, "metadata", metadata)
    monkeypatch.setattr(pi_camera, "age", age)
    captured = pi_read(lores=False)
    assert captured.t_capture is None and captured.stamp == ARRIVAL and captured.lores is None
    assert pi_camera.made[0].released == 1


# --- video files


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20 fps mp4 of 10 frames of the cat."""
    path = tmp_path_factory.mktemp("video") / "cat.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 20.0, (320, 180))
    for _ in range(10):
        writer.write(cv2.resize(CAT, (320, 180)))
    writer.release()
    return path


def test_a_file_read_as_fast_as_the_pipeline_reads_is_stamped_at_arrival(video):
    source = VideoFileSource(CameraConfig(source=str(video)), str(video))
    source.open()
    frames = [source.read() for _ in range(5)]
    source.close()
    assert all(f.t_capture is None and f.stamp == ARRIVAL for f in frames)


def test_a_paced_file_is_stamped_at_its_pacers_ticks(video):
    source = VideoFileSource(CameraConfig(source=str(video), realtime=True), str(video))
    source.open()
    frames, returned = [], []
    for _ in range(5):
        frames.append(source.read())
        returned.append(time.monotonic())
    source.close()
    stamps = [f.t_capture for f in frames]
    assert all(f.stamp == PRESENTATION for f in frames) and None not in stamps
    ticks = [t for t in stamps if t is not None]
    assert all(later - earlier >= 1 / 20 - 1e-9 for earlier, later in pairwise(ticks))  # 20 fps at most
    assert all(t <= r for t, r in zip(ticks, returned, strict=True))  # presented before it was handed over


# --- a real stream


def test_a_stream_whose_pts_ffmpeg_makes_up_is_stamped_at_arrival():
    """smartcam's /stream.mjpg (at most http.stream.max_fps 10) carries no pts; FFmpeg numbers its frames at an
    assumed 25 fps, which do not keep time with the arrivals, so no frame is stamped at them."""
    port = free_port()
    with network_camera(port) as camera:
        wait_for(lambda: camera.pipeline.stats.processed > 0, "the network camera", 30)
        source = StreamSource(CameraConfig(source="http"), f"http://127.0.0.1:{port}/stream.mjpg")
        source.open()
        try:
            start, frames, positions = time.monotonic(), [], []
            while time.monotonic() - start < 4.0:  # four of the clock's windows
                frames.append(source.read())
                positions.append(source.position_s)
        finally:
            source.close()
    assert len(frames) > 10 and all(f.image.shape == (240, 320, 3) for f in frames)
    steps = {round(b - a, 3) for a, b in pairwise(positions)}
    assert steps == {0.04}  # FFmpeg's made-up pts: 1/25 s apart, whatever the rate
    assert all(f.t_capture is None and f.stamp == ARRIVAL for f in frames)
