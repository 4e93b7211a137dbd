"""A damaged video file: frames that do not decode are skipped (the rest still processed), counted as
`decode_error`, and said in the log and the summary, instead of a short run that exits 0 in silence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import IMAGES, PET, PROJECT, imread

FRAMES = 300


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
