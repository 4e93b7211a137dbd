"""The bench's plan and its runs: which (mode, outputs, threads) to measure, in an order that alternates them, each
repeated, each in a child process of its own (`app.bench.child`).

Alternating matters on a shared or thermally throttled board: a slow minute then spreads over every mode instead of
landing on one. The order of the modes turns by one at every repetition.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

from app.bench.child import MODES, RunSpec, spec_argument
from app.errors import SmartcamError

#: the (mode, outputs) pairs worth measuring: `limit` has no outputs
VARIANTS = tuple((mode, outputs) for mode in MODES for outputs in (False, True) if not (mode == "limit" and outputs))


class BenchError(SmartcamError):
    """A run failed: its child's last lines say why."""


def plan(modes: list[str], outputs: list[bool], threads: list[int], repeat: int,
         template: RunSpec) -> Iterator[RunSpec]:
    """Every run, repetition by repetition; within one, each thread count with the variants rotated."""
    variants = [v for v in VARIANTS if v[0] in modes and (v[0] == "limit" or v[1] in outputs)]
    for rep in range(repeat):
        turned = variants[rep % len(variants):] + variants[:rep % len(variants)]
        for count in threads:
            for mode, on in turned:
                overrides = [*template.overrides, f"stages.inference.threads={count}"]
                yield replace(template, mode=mode, outputs=on, threads=count, overrides=overrides)


class StreamViewer:
    """One MJPEG client of the live page, reading /stream.mjpg as fast as the server sends it (the server paces it
    at `http.stream.max_fps`), from the bench's own process so the run it watches does not pay for it."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/stream.mjpg"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stream-viewer", daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as stream:
                    while not self._stop.is_set() and stream.read(65536):
                        pass
            except OSError:  # the server is not up yet, or has gone
                self._stop.wait(0.05)

    def __enter__(self) -> StreamViewer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(6)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(spec: RunSpec) -> dict:
    """One run in a fresh `python -m app.bench.child` process, watched by a viewer when it serves the live page;
    its measurement."""
    watched = spec.mode == "pipeline" and spec.outputs
    spec = replace(spec, port=free_port() if watched else 0, launched=time.monotonic())
    with StreamViewer(spec.port) if watched else contextlib.nullcontext():
        proc = subprocess.run([sys.executable, "-m", "app.bench.child", spec_argument(spec)],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        why = "\n".join(proc.stderr.strip().splitlines()[-3:])
        raise BenchError(f"bench run {spec.mode} (outputs {'on' if spec.outputs else 'off'}, {spec.threads} "
                         f"threads) failed: {why}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
