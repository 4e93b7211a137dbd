"""A stop signal at any moment of a run, start-up included, ends it with exit 0, the summary line and no traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PET, PROJECT

COMMAND = [sys.executable, "-m", "app", "--source", "pattern", "--set", "camera.width=320", "--set",
           "camera.height=240", *[arg for override in PET for arg in ("--set", override)]]


def catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler of its own for `signum` (SigCgt in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def stopped(signum: int, after: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run the pipeline, send `signum` at the moment `after` names, and return what the process said."""
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        proc = subprocess.Popen(COMMAND, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        deadline = time.monotonic() + 60
        # SIGTERM has no handler until app/__main__.py installs one, so its bit says our handlers are in
        while not (catches(proc.pid, signal.SIGTERM) and (not after or after in log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.005)
        proc.send_signal(signum)
        proc.wait(timeout=30)
    return subprocess.CompletedProcess(COMMAND, proc.returncode, "", log.read_text())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("after", ["", "app.model.runtime: model", "opened"],
                         ids=["at-start", "model-loaded", "running"])
def test_a_stop_signal_at_any_moment_ends_cleanly(signum, after, tmp_path):
    run = stopped(signum, after, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "KeyboardInterrupt" not in run.stderr, run.stderr
    assert run.stderr.splitlines()[-1].startswith("smartcam: captured "), run.stderr
