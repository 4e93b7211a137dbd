"""JSON lines behind their own outbox: a reader that stops reading slows no other output; `| head` ends quietly.
A file holds whole lines only (a torn tail cut on start, a failed write cut back), is rotated at `jsonl.max_mb`
keeping `jsonl.keep`, and pauses, counting, while the disk is nearly full. A disk that really fills:
test_disk_full.py."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app.config import load_settings
from app.errors import ConfigError
from app.metrics import Stats
from app.pipeline import Pipeline
from app.outputs import PublishContext, build_publishers
from app.outputs.jsonl import JsonLines
from app.outputs.line_file import LineFile
from conftest import IMAGES, PET, PROJECT, Collector, cat_settings, free_port, wait_for

LIVE_PET = ["--source", "pattern", "--set", "camera.width=320", "--set", "camera.height=240",
            "--set", "camera.fps=30", *[arg for override in PET for arg in ("--set", override)]]


def latest_seq(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/latest", timeout=5) as response:
            return json.load(response).get("seq")
    except OSError:
        return None


def stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/stats", timeout=5) as response:
        return json.load(response)


def test_a_pipe_nobody_drains_slows_no_other_output():
    """stdout is a pipe this test never reads: once its buffer is full, /api/latest still advances."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "app", *LIVE_PET, "--output", "jsonl:-",
                             "--set", "http.enabled=true", "--set", f"http.port={port}"],
                            cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        # a 64 KiB pipe holds a few hundred result lines: wait until the writer must be stuck on it
        while (stats(port)["drops"].get("jsonl_outbox", 0) if latest_seq(port) else 0) == 0:
            assert time.monotonic() < deadline and proc.poll() is None, "the JSON-lines outbox never filled"
            time.sleep(0.5)
        first = latest_seq(port)
        assert first is not None
        while (latest_seq(port) or 0) < first + 30:
            assert time.monotonic() < deadline and proc.poll() is None, "/api/latest stopped advancing"
            time.sleep(0.5)
        assert stats(port)["drops"].get("output_full", 0) == 0
    finally:
        proc.kill()
        proc.wait()


def test_a_reader_that_goes_away_ends_the_run_quietly():
    """`python -m app ... --output jsonl:- | head -n 3`: three lines, exit 0, no traceback."""
    shell = subprocess.run(f"{sys.executable} -m app {' '.join(LIVE_PET)} --output jsonl:- | head -n 3",
                           shell=True, cwd=PROJECT, capture_output=True, text=True, timeout=120,
                           executable="/bin/bash")
    assert len(shell.stdout.splitlines()) == 3
    assert "Traceback" not in shell.stderr and "Error" not in shell.stderr, shell.stderr


# --- a file: whole lines, bounded, paused on a nearly full disk ----------------------------------------------------

def jsonl_settings(tmp_path: Path, source: Path | str, *overrides: str):
    return cat_settings(tmp_path, f"camera.source={source}", "snapshots.enabled=false", "jsonl.enabled=true",
                        f"jsonl.path={tmp_path / 'results.jsonl'}", *overrides)


def seqs(path: Path) -> list[int]:
    """The seq of each line of `path`, which must be whole JSON lines."""
    text = path.read_text()
    assert text == "" or text.endswith("\n"), text[-80:]
    return [json.loads(line)["seq"] for line in text.splitlines()]


def test_a_file_is_rotated_at_max_mb_keeping_keep_and_never_holds_more(tmp_path, cat_clip):
    """90 lines of about 330 bytes, files of at most 4 KiB, three old ones kept: the newest lines, in order."""
    settings = jsonl_settings(tmp_path, cat_clip, "jsonl.max_mb=0.004", "jsonl.keep=3")
    stats = Pipeline(settings, build_publishers(settings)).run()

    path = tmp_path / "results.jsonl"
    generations = [path.with_name(f"results.jsonl.{n}") for n in (3, 2, 1)] + [path]
    assert sorted(tmp_path.glob("results.jsonl*")) == sorted(generations)
    bound = round(0.004 * 1024 * 1024)
    assert all(0 < file.stat().st_size <= bound for file in generations)
    kept = [seq for file in generations for seq in seqs(file)]
    assert kept == list(range(91 - len(kept), 91))  # the newest, oldest first, none lost between files
    assert stats.processed == 90 and not stats.drops


@pytest.mark.parametrize("tail", [bytes(500), b'{"pipeline":"cats","source":"cam0","seq":3,"ts":17641'],
                         ids=["NUL bytes of a power cut", "a torn line"])
def test_a_tail_that_is_not_a_whole_line_is_cut_on_start_with_one_warning(tmp_path, caplog, tail):
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"seq":1}\n{"seq":2}\n' + tail)
    settings = jsonl_settings(tmp_path, IMAGES / "cat.bmp")
    Pipeline(settings, build_publishers(settings)).run()

    assert seqs(path) == [1, 2, 1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{path} ended in {len(tail)} bytes that are not a whole line (a power cut?); cut back to "
                        "its last whole line"]


def test_a_nearly_full_disk_pauses_the_file_with_one_warning_counts_and_resumes(tmp_path, caplog, cat_clip):
    """90 frames; free space is below jsonl.min_free_mb for the first 30: the last 60 lines are written."""
    caplog.set_level(logging.INFO, logger="app.outputs.jsonl")
    settings = jsonl_settings(tmp_path, cat_clip, "jsonl.min_free_mb=1000000000")
    config = settings.device.jsonl
    pipeline: Pipeline

    def space_returns() -> None:
        wait_for(lambda: pipeline.stats.drops["jsonl_disk_full"] >= 30, "the first 30 lines dropped")
        config.min_free_mb = 0

    pipeline = Pipeline(settings, [Collector(at={31: space_returns}), *build_publishers(settings)])
    stats = pipeline.run()

    assert seqs(tmp_path / "results.jsonl") == list(range(31, 91))
    assert stats.drops == {"jsonl_disk_full": 30}
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "app.outputs.jsonl"]
    warnings = [message for level, message in messages if level == logging.WARNING]
    assert len(warnings) == 1 and "jsonl paused" in warnings[0] and "below jsonl.min_free_mb" in warnings[0]
    assert [message for _, message in messages if "resumed" in message] == ["cam0: jsonl resumed after 30 dropped"]


def test_a_wrong_path_fails_at_start_and_a_disk_in_trouble_is_waited_for(tmp_path, monkeypatch):
    """A folder named as the file is exit 2 (what validate sees); a disk that cannot be written at start (read-only
    after errors, full) is the world's to fix: the run goes on and its lines are written once the disk takes them."""
    (tmp_path / "folder.jsonl").mkdir()
    wrong = jsonl_settings(tmp_path, IMAGES / "cat.bmp", f"jsonl.path={tmp_path / 'folder.jsonl'}")
    with pytest.raises(ConfigError, match=r"jsonl.path: cannot open .*folder.jsonl for writing \(Is a directory\)"):
        Pipeline(wrong, build_publishers(wrong)).run()

    def read_only_now(self) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(LineFile, "open", read_only_now)  # at start only: the worker opens as it always does
    settings = jsonl_settings(tmp_path, IMAGES / "cat.bmp")
    stats = Pipeline(settings, build_publishers(settings)).run()
    assert seqs(tmp_path / "results.jsonl") == [1] and not stats.drops


LINE = b'{"seq":%d}\n'


@pytest.mark.parametrize("cut_back", ["at once", "on the next open"])
def test_a_write_that_fails_part_way_leaves_whole_lines(tmp_path, monkeypatch, caplog, cut_back):
    """Half a line written, then no space: the file is cut back at once, or, when even that fails (an I/O
    error), on the next open, before the next line."""
    path = tmp_path / "results.jsonl"
    file = LineFile(path, 1 << 20, keep=1)
    file.append(LINE % 1)
    real_write = os.write
    calls = []

    def half_then_full(fd: int, data) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def failing_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with monkeypatch.context() as patched:
        patched.setattr(os, "write", half_then_full)
        if cut_back == "on the next open":
            patched.setattr(os, "ftruncate", failing_truncate)
        with pytest.raises(OSError, match="No space left"):
            file.append(b'{"seq":2,"detections":[]}\n')
    assert len(calls) == 2
    if cut_back == "at once":
        assert path.read_bytes() == LINE % 1
    file.append(LINE % 3)
    file.close()

    assert seqs(path) == [1, 3]
    cuts = [r.getMessage() for r in caplog.records if "not a whole line" in r.getMessage()]
    assert len(cuts) == (cut_back == "on the next open")


def test_writers_of_one_path_follow_each_others_rotations(tmp_path):
    """Two cameras with one jsonl.path, writing in turn: each writes to the file the path names now, so the kept
    files hold the newest lines in the order they were written."""
    path = tmp_path / "results.jsonl"
    left, right = LineFile(path, 100, keep=2), LineFile(path, 100, keep=2)
    for seq in range(1, 41):
        (left if seq % 2 else right).append(LINE % seq)
    left.close()
    right.close()

    kept = [seq for name in ("results.jsonl.2", "results.jsonl.1", "results.jsonl") for seq in seqs(tmp_path / name)]
    assert kept == list(range(41 - len(kept), 41)) and len(kept) >= 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl", "results.jsonl.1", "results.jsonl.2"]


def test_a_file_opened_at_start_is_closed_when_its_folder_goes_before_a_line(tmp_path):
    """A USB stick pulled out between start and the first line, then the run stopped: nothing stays open."""
    stick = tmp_path / "usb"
    stick.mkdir()
    settings = load_settings("detect", None, [*PET, "jsonl.enabled=true", f"jsonl.path={stick / 'results.jsonl'}"])
    output = JsonLines(settings.device.jsonl)
    output.start(PublishContext(settings, Stats(), settings.pipeline.publish))

    def open_files() -> list[str]:
        return [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                if os.path.exists(f"/proc/self/fd/{fd}")]

    assert str(stick / "results.jsonl") in open_files()
    shutil.rmtree(stick)
    output.close(time.monotonic() + 10)
    assert not [name for name in open_files() if "results.jsonl" in name]


def test_a_fifo_as_the_path_is_written_to_never_rotated_or_cut(tmp_path):
    """A FIFO (or a device such as /dev/full) named as jsonl.path is only written to: a rotation would rename it."""
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so the writer's open does not wait
    try:
        writer = LineFile(fifo, 10, keep=1)
        for seq in (1, 2, 3):
            writer.append(LINE % seq)
        writer.close()
        assert [json.loads(line)["seq"] for line in os.read(reader, 4096).splitlines()] == [1, 2, 3]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["results.fifo"]
    finally:
        os.close(reader)
