"""A damaged video file: frames that do not decode are skipped (the rest still processed), counted as
`decode_error`, and said in the log and the summary, instead of a short run that exits 0 in silence; and the file
always ends, each frame delivered at most once (the field fault: OpenCV's seek past a bad frame landed on an earlier
keyframe, and a damaged 300-frame file gave 18,718 results in 300 s)."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from app.config import CameraConfig
from app.sources.base import EndOfStream
from app.sources.video_file import MAX_ERRORS_IN_PLACE, VideoFileSource
from conftest import IMAGES, PET, PROJECT, imread

FRAMES = 300
#: the numbered clip: its size, and the side of the squares that carry each frame's number
WIDTH, HEIGHT, SQUARE = 320, 240, 32
#: patches of 64 random bytes in each damaged copy, as in the field
PATCHES = (1000, 1600, 2200, 2800, 3400, 4000)


@pytest.fixture(scope="module")
def damaged_clip(tmp_path_factory) -> Path:
    """A 300-frame MPEG-4 clip with a tenth of the file overwritten twice: OpenCV alone stops at frame 85."""
    folder = tmp_path_factory.mktemp("damaged")
    image = cv2.resize(imread(IMAGES / "cat_720p.jpg"), (320, 180))
    writer = cv2.VideoWriter(str(folder / "clip.mp4"), cv2.VideoWriter.fourcc(*"mp4v"), 30, (320, 180))
    for i in range(FRAMES):
        writer.write(np.roll(image, i * 2, axis=1))
    writer.release()
    data = bytearray((folder / "clip.mp4").read_bytes())
    size = len(data)
    for start, fill in ((int(size * 0.3), 0x00), (int(size * 0.6), 0xFF)):
        data[start:start + size // 10] = bytes([fill]) * (size // 10)
    (folder / "damaged.mp4").write_bytes(bytes(data))
    return folder / "damaged.mp4"


def frames_opencv_reads_alone(path: Path) -> int:
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        count += 1
    return count


def test_frames_that_do_not_decode_are_skipped_counted_and_said(damaged_clip):
    plain = frames_opencv_reads_alone(damaged_clip)
    assert plain < FRAMES // 2  # the damage the test needs: a plain read loop stops early
    run = subprocess.run([sys.executable, "-m", "app", "--source", str(damaged_clip), "--output", "jsonl:-",
                          *[arg for override in PET for arg in ("--set", override)]],
                         cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    processed = len(run.stdout.splitlines())
    assert processed > plain  # frames after the damage were reached
    summary = run.stderr.splitlines()[-1]
    lost = FRAMES - processed
    assert f"decode_error {lost}" in summary, summary
    assert f"ended after {processed} of its {FRAMES} frames: {lost} did not decode" in run.stderr
    assert "does not decode; skipped" in run.stderr


def numbered(index: int, background: np.ndarray) -> np.ndarray:
    """`background` panned by `index`, with `index` in 9 black/white squares along the top and its complement in 9
    below them, so a frame's number can be read back and told from a damaged one."""
    image = np.ascontiguousarray(np.roll(background, index * 2, axis=1)[:, :WIDTH])
    for row, value in enumerate((index, ~index)):
        for bit in range(9):
            image[row * SQUARE:(row + 1) * SQUARE, bit * SQUARE:(bit + 1) * SQUARE] = 255 if value >> bit & 1 else 0
    return image


def number_of(image: np.ndarray) -> int | None:
    """The number `numbered` drew, or None where a square is not clearly black or white or the two rows disagree."""
    rows = []
    for row in range(2):
        value = 0
        for bit in range(9):
            mean = image[row * SQUARE + 8:(row + 1) * SQUARE - 8, bit * SQUARE + 8:(bit + 1) * SQUARE - 8].mean()
            if 48 < mean < 208:
                return None
            value |= (mean >= 128) << bit
        rows.append(value)
    return rows[0] if rows[0] ^ rows[1] == 0x1FF else None


@pytest.fixture(scope="module")
def numbered_clips(tmp_path_factory) -> tuple[Path, list[Path]]:
    """A 300-frame MPEG-4 clip whose frames carry their number, and six copies with 1,000 to 4,000 patches of 64
    random bytes each (seeded) between the container's header and its index (moov, written last), so each opens."""
    folder = tmp_path_factory.mktemp("numbered")
    background = cv2.resize(imread(IMAGES / "cat_720p.jpg"), (WIDTH * 2, HEIGHT))
    clip = folder / "numbered.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 30, (WIDTH, HEIGHT))
    for i in range(FRAMES):
        writer.write(numbered(i, background))
    writer.release()
    data = clip.read_bytes()
    media_start, index_start = data.index(b"mdat") + 4, data.rindex(b"moov") - 4
    rng = np.random.default_rng(22)
    damaged = []
    for patches in PATCHES:
        copy = bytearray(data)
        for start in rng.integers(media_start, index_start - 64, patches):
            copy[start:start + 64] = rng.bytes(64)
        damaged.append(folder / f"damaged_{patches}.mp4")
        damaged[-1].write_bytes(bytes(copy))
    return clip, damaged


class Recorded(VideoFileSource):
    """The source, recording the pts of every frame it delivers."""

    def __init__(self, path: Path) -> None:
        super().__init__(CameraConfig(source=str(path)), str(path))
        self.pts: list[int | None] = []

    def _next_frame(self) -> av.VideoFrame:
        frame = super()._next_frame()
        self.pts.append(frame.pts)
        return frame


def read_through(source: VideoFileSource, limit: int = 10 * FRAMES) -> tuple[list[np.ndarray], bool]:
    """The frames `source` delivers until EndOfStream, and whether it ended (False: stopped at `limit`, the safety
    net of a source that would read forever)."""
    source.open()
    images: list[np.ndarray] = []
    try:
        while len(images) < limit:
            try:
                images.append(source.read().image)
            except EndOfStream:
                return images, True
    finally:
        source.close()
    return images, False


def test_the_numbered_clip_reads_back_every_number_in_order(numbered_clips):
    clip, _ = numbered_clips
    source = Recorded(clip)
    images, ended = read_through(source)
    assert ended and [number_of(image) for image in images] == list(range(FRAMES))
    assert source.decode_errors == 0


@pytest.mark.parametrize("copy", range(len(PATCHES)), ids=[f"{n}-patches" for n in PATCHES])
def test_a_damaged_file_ends_and_delivers_each_frame_at_most_once(numbered_clips, copy):
    source = Recorded(numbered_clips[1][copy])
    images, ended = read_through(source)
    delivered = len(images)
    assert ended, f"still reading after {delivered} frames"
    assert 0 < delivered < FRAMES and delivered + source.decode_errors == FRAMES
    assert all(earlier < later for earlier, later in pairwise(source.pts))  # type: ignore[operator]
    # where a number is readable it never goes back; it may repeat: a frame whose data is lost is concealed with
    # its reference's pixels (a frame of its own, with its own pts)
    numbers = [n for n in map(number_of, images) if n is not None]
    assert numbers == sorted(numbers)


def test_the_most_damaged_file_ends_through_the_app(numbered_clips):
    damaged = numbered_clips[1][-1]
    run = subprocess.run([sys.executable, "-m", "app", "--source", str(damaged), "--output", "jsonl:-",
                          *[arg for override in PET for arg in ("--set", override)]],
                         cwd=PROJECT, capture_output=True, text=True, timeout=300)  # the safety net, not a speed
    assert run.returncode == 0, run.stderr
    processed = len(run.stdout.splitlines())
    assert 0 < processed < FRAMES
    assert f"decode_error {FRAMES - processed})" in run.stderr.splitlines()[-1]
    assert re.search(rf"ended after {processed} of its {FRAMES} frames: {FRAMES - processed} did not decode",
                     run.stderr)


class Again:
    """A container whose demuxer, at the end of the file, starts again from its beginning: every frame comes twice."""

    def __init__(self, container: av.container.InputContainer) -> None:
        self.container = container

    def demux(self, stream: av.video.VideoStream) -> Iterator[av.Packet]:
        yield from self.container.demux(stream)
        self.container.seek(0)
        yield from self.container.demux(stream)

    def close(self) -> None:
        self.container.close()


def test_a_frame_that_comes_again_is_not_delivered_again(numbered_clips, caplog):
    source = Recorded(numbered_clips[0])
    source.open()
    source._container = Again(source._container)  # type: ignore[assignment, arg-type]
    images: list[np.ndarray] = []
    with pytest.raises(EndOfStream):
        while len(images) <= 2 * FRAMES:
            images.append(source.read().image)
    assert [number_of(image) for image in images] == list(range(FRAMES))
    assert "comes again" in caplog.text  # and counted, until there have been too many with the file going nowhere
    assert source.decode_errors == MAX_ERRORS_IN_PLACE and "errors in a row without getting further" in caplog.text


class Stuck:
    """A container whose demuxer fails at once, every time it is asked, without getting anywhere in the file."""

    def __init__(self, container: av.container.InputContainer) -> None:
        self.container = container
        self.asked = 0

    def demux(self, stream: av.video.VideoStream) -> Iterator[av.Packet]:
        self.asked += 1
        if self.asked > 10 * MAX_ERRORS_IN_PLACE:  # the test's safety net: a source that would ask forever
            return
        raise av.error.InvalidDataError(-1094995529, "Invalid data found when processing input")
        yield

    def close(self) -> None:
        self.container.close()


def test_a_demuxer_that_makes_no_progress_ends_the_file(numbered_clips, caplog):
    caplog.set_level(logging.WARNING)
    source = Recorded(numbered_clips[0])
    source.open()
    stuck = Stuck(source._container)  # type: ignore[arg-type]
    source._container = stuck  # type: ignore[assignment]
    with pytest.raises(EndOfStream):
        source.read()
    assert stuck.asked == MAX_ERRORS_IN_PLACE
    assert f"{MAX_ERRORS_IN_PLACE} errors in a row without getting further into the file" in caplog.text
    assert f"ended after 0 of its {FRAMES} frames: {FRAMES} did not decode" in caplog.text
