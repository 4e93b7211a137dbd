"""Sources against real files: a video made at run time, the shared test images, the synthetic pattern."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import pytest

from app.config import CameraConfig, load_settings
from app.errors import ConfigError, SourceError
from app.pipeline import Pipeline
from app.sources import EndOfStream, Source, build_source, picamera2_cameras
from app.sources.auto import AutoCamera
from app.sources.images import ImageSource
from app.sources.opencv import V4L2Source
from app.sources.stream import StreamSource
from app.sources.pattern import PatternSource
from app.sources.picamera2 import Picamera2Source
from app.sources.video_file import VideoFileSource
from app.sources.reconnect import RECONNECTING
from conftest import IMAGES, PET, PROJECT, Background, Collector, imread, wait_for

FRAMES, W, H = 30, 320, 180


def camera(source: str | Path, **kw) -> CameraConfig:
    return CameraConfig(source=str(source), **kw)


def read_all(source: Source, limit: int = 1000) -> list[np.ndarray]:
    """Every frame until EndOfStream (at most `limit`)."""
    frames: list[np.ndarray] = []
    source.open()
    try:
        while len(frames) < limit:
            try:
                frames.append(source.read().image)
            except EndOfStream:
                break
    finally:
        source.close()
    return frames


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10 fps mp4 of a pan across the cat picture."""
    path = tmp_path_factory.mktemp("video") / "pan.mp4"
    cat = cv2.resize(imread(IMAGES / "cat_720p.jpg"), (W * 2, H))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (W, H))
    assert writer.isOpened()
    for i in range(FRAMES):
        x = i * W // FRAMES
        writer.write(np.ascontiguousarray(cat[:, x : x + W]))
    writer.release()
    return path


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """a.bmp, b.jpg, c.png (three different pictures) and a text file."""
    shutil.copy(IMAGES / "cat.bmp", tmp_path / "a.bmp")
    shutil.copy(IMAGES / "cat_720p.jpg", tmp_path / "b.jpg")
    cv2.imwrite(str(tmp_path / "c.png"), imread(IMAGES / "owl.jpg"))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_video_file_reads_every_frame_as_opencv_decodes_it_then_ends(video: Path) -> None:
    source = build_source(camera(video))
    assert isinstance(source, VideoFileSource) and not source.live
    frames = read_all(source)
    assert len(frames) == FRAMES
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in frames)
    first_bgr = cv2.VideoCapture(str(video)).read()[1]
    np.testing.assert_array_equal(frames[0], first_bgr)  # BGR: no conversion at capture


def test_video_file_loop_goes_past_the_end(video: Path) -> None:
    frames = read_all(build_source(camera(video, loop=True)), limit=FRAMES * 2 + 5)
    assert len(frames) == FRAMES * 2 + 5


def test_video_file_realtime_is_live_and_paced(video: Path) -> None:
    source = build_source(camera(video, realtime=True))
    assert source.live
    source.open()
    try:
        start = time.monotonic()
        for _ in range(10):
            source.read()
        assert time.monotonic() - start >= 0.8  # 10 frames at 10 fps: a lower bound only
    finally:
        source.close()
        source.close()  # safe twice


def test_single_image_is_one_frame_as_opencv_reads_it(tmp_path: Path) -> None:
    source = build_source(camera(IMAGES / "cat.bmp"))
    assert isinstance(source, ImageSource) and not source.live
    frames = read_all(source)
    assert len(frames) == 1
    np.testing.assert_array_equal(frames[0], imread(IMAGES / "cat.bmp"))  # BGR: no conversion at capture


def test_directory_reads_images_sorted_and_skips_others(image_dir: Path) -> None:
    frames = read_all(build_source(camera(image_dir)))
    expected = [imread(image_dir / n) for n in ("a.bmp", "b.jpg", "c.png")]
    assert len(frames) == 3
    for got, want in zip(frames, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_glob_reads_matching_images(image_dir: Path) -> None:
    source = build_source(camera(image_dir / "*.jpg"))
    assert isinstance(source, ImageSource)
    frames = read_all(source)
    assert len(frames) == 1
    np.testing.assert_array_equal(frames[0], imread(image_dir / "b.jpg"))


def test_image_loop_starts_again(image_dir: Path) -> None:
    assert len(read_all(build_source(camera(image_dir, loop=True)), limit=7)) == 7


def test_unreadable_image_is_skipped_with_a_warning(image_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    (image_dir / "broken.jpg").write_bytes(b"not a jpeg")
    assert len(read_all(build_source(camera(image_dir)))) == 3
    assert "broken.jpg" in caplog.text


def test_no_readable_image_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(SourceError, match="could be read"):
        read_all(build_source(camera(tmp_path)))


def test_empty_directory_and_glob_are_source_errors(tmp_path: Path) -> None:
    for spec in (tmp_path, tmp_path / "*.jpg"):
        with pytest.raises(SourceError, match=str(tmp_path)):
            build_source(camera(spec)).open()


def test_pattern_has_the_configured_size_and_moves() -> None:
    source = build_source(camera("pattern", width=160, height=120, fps=100))
    assert isinstance(source, PatternSource) and source.live
    source.open()
    frames = [source.read().image for _ in range(3)]
    source.close()
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])
    np.testing.assert_array_equal(source.render(1), frames[1])  # deterministic


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("/dev/video0", V4L2Source),
        ("0", V4L2Source),
        ("rtsp://x", StreamSource),
        ("http://x/y.mjpg", StreamSource),
        ("pattern", PatternSource),
        ("picamera2", Picamera2Source),
        ("auto", AutoCamera),  # which camera is chosen at open: test_reconnect.py
        (IMAGES / "cat_720p.jpg", ImageSource),
        (IMAGES, ImageSource),
        (IMAGES / "*.bmp", ImageSource),
    ],
)
def test_open_source_picks_the_kind(spec: str | Path, kind: type) -> None:
    assert type(build_source(camera(spec))) is kind


def test_open_source_picks_video_file(video: Path) -> None:
    source = build_source(camera(video))
    assert type(source) is VideoFileSource and not source.reconnects  # there: a file that fails is not retried


@pytest.mark.parametrize(("name", "kind"), [("clip.mp4", VideoFileSource), ("clip.MKV", VideoFileSource),
                                            ("shot.jpg", ImageSource), ("shots", ImageSource)])
def test_a_path_not_there_is_a_source_waited_for(tmp_path: Path, name: str, kind: type) -> None:
    source = build_source(camera(tmp_path / "usb" / name))
    assert type(source) is kind and source.reconnects  # the pipeline wraps it in Reconnecting, as a camera
    with pytest.raises(SourceError, match=re.escape(f"{tmp_path / 'usb' / name}: not there (a disk not mounted")):
        source.open()


def test_index_means_dev_video() -> None:
    assert build_source(camera("2")).description == "/dev/video2"


def test_stream_description_hides_the_password() -> None:
    assert build_source(camera("rtsp://admin:secret@cam/stream")).description == "rtsp://***@cam/stream"


@pytest.mark.parametrize("spec", ["", "ftp://x/y"])
def test_bad_spec_is_a_config_error_naming_it(spec: str) -> None:
    with pytest.raises(ConfigError, match="camera.source") as error:
        build_source(camera(spec))
    assert repr(spec) in str(error.value) and "\n" not in str(error.value)


def test_a_file_not_there_is_waited_for_then_read_to_its_end(tmp_path: Path, video: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "usb" / "pan.mp4"
    settings = load_settings("detect", None, [*PET, f"camera.source={path}", "camera.reconnect.initial_delay_s=0.05",
                                              "camera.reconnect.max_delay_s=0.1"])
    collect = Collector()
    pipeline = Pipeline(settings, [collect])
    assert not pipeline.source.live  # once there, read as a file is: every frame processed
    with Background(pipeline) as run:
        health = pipeline.stats.health["source"]
        wait_for(lambda: cast(int, health()["attempts"]) >= 3, lambda: f"three attempts to open it: {health()}")
        assert health()["state"] == RECONNECTING and health()["retrying"]  # down, retrying: the watchdog is fed
        assert "not there (a disk not mounted yet?)" in str(health()["last_error"])
        data = bytearray(video.read_bytes())
        data[len(data) // 3:len(data) // 2] = bytes(len(data) // 2 - len(data) // 3)  # a damaged middle
        path.parent.mkdir()
        (tmp_path / "copying").write_bytes(bytes(data))
        (tmp_path / "copying").rename(path)  # the disk is there
        wait_for(lambda: not run.alive, "the run to end with the file")
    drops = pipeline.stats.drop_counts()
    assert set(drops) == {"source_error", "decode_error"}  # the failed opens, and the frames that did not decode
    assert collect.count + drops["decode_error"] == FRAMES  # and nothing else lost
    assert caplog.text.count("not there") == 1  # said once, not at every attempt


def test_missing_device_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="/dev/video99.*v4l2-ctl"):
        build_source(camera("/dev/video99")).open()


def test_picamera2_without_the_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # as off a Pi, whatever this machine has
    with pytest.raises(SourceError, match="python3-picamera2"):
        build_source(camera("picamera2"), lores_size=(300, 300)).open()
    assert picamera2_cameras() == []


def test_pyav_is_loaded_only_for_a_video_file(cat_clip):
    """Its FFmpeg libraries cost about 15 MB: a camera (here the pattern) runs without them, a file loads them."""
    script = ("import sys; from app.api import open_pipeline\n"
              "with open_pipeline('detect', source=sys.argv[1], overrides=sys.argv[2:]) as results:\n"
              "    next(iter(results))\n"
              "print('av' in sys.modules)")
    for source, loaded in (("pattern", "False"), (str(cat_clip), "True")):
        run = subprocess.run([sys.executable, "-c", script, source, *PET], cwd=PROJECT, capture_output=True,
                             text=True, timeout=120)
        assert run.stdout.strip() == loaded, (source, run.stderr)
