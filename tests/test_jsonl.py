"""JSON lines behind their own outbox: a reader that stops reading slows no other output; `| head` ends quietly."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from conftest import PET, PROJECT, free_port

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
