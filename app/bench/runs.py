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

import numpy as np

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


class RobotClients:
    """A UDP client and a ZeroMQ subscriber of a `robot` run, in the bench's own process, served by one thread that
    polls both (two threads would wait for each other's GIL): each notes, per frame's message, the CLOCK_MONOTONIC
    time it arrived, against the frame's stamp and the moment its result was ready (the stamp plus
    `latency_ms.exposure_to_result`: the end of the inference lane's work on it)."""

    def __init__(self, udp_port: int, zmq_port: int) -> None:
        import zmq

        self._stop = threading.Event()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", udp_port))
        self.udp.setblocking(False)
        self._context = zmq.Context()
        self.sub = self._context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(f"tcp://127.0.0.1:{zmq_port}")
        self.received: dict[str, list[tuple[int, bytes]]] = {"udp": [], "zmq": []}
        self._thread = threading.Thread(target=self._listen, name="bench-robot-clients", daemon=True)

    def _listen(self) -> None:
        import zmq

        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        poller.register(self.udp, zmq.POLLIN)
        while True:  # after the run, until the last messages in flight have been read
            ready = dict(poller.poll(100))
            now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            if not ready and self._stop.is_set():
                return
            if self.udp.fileno() in ready:
                self.received["udp"].append((now, self.udp.recv(65536)))
            if self.sub in ready:
                self.received["zmq"].append((now, self.sub.recv_multipart()[-1]))

    def __enter__(self) -> RobotClients:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.udp.close()
        self.sub.close(linger=0)
        self._context.term()

    def receipt(self) -> dict[str, dict]:
        """Per transport: frames received, and exposure (the stamp) to receipt and result to receipt, ms."""
        out = {}
        for transport, messages in self.received.items():
            frames = [(now, m) for now, m in ((now, json.loads(data)) for now, data in messages)
                      if m.get("type") != "label_info"]
            from_stamp = [(now - m["stamp_monotonic_ns"]) / 1e6 for now, m in frames]
            from_result = [ms - m["latency_ms"]["exposure_to_result"]
                           for ms, (_, m) in zip(from_stamp, frames, strict=True)]
            out[transport] = {"frames": len(frames), **({
                "exposure_to_receipt_ms": _percentiles(from_stamp), "result_to_receipt_ms": _percentiles(from_result)}
                if frames else {})}
        return out


def _percentiles(values: list[float]) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(values, q)), 3) for q in (50, 99)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(spec: RunSpec) -> dict:
    """One run in a fresh `python -m app.bench.child` process, watched by a viewer when it serves the live page;
    its measurement."""
    watched = spec.mode in ("pipeline", "robot", "clips") and spec.outputs
    robot = spec.mode == "robot"
    spec = replace(spec, port=free_port() if watched else 0, udp_port=free_port() if robot else 0,
                   zmq_port=free_port() if robot else 0, launched=time.monotonic())
    with contextlib.ExitStack() as stack:
        if watched:
            stack.enter_context(StreamViewer(spec.port))
        clients = stack.enter_context(RobotClients(spec.udp_port, spec.zmq_port)) if robot else None
        proc = subprocess.run([sys.executable, "-m", "app.bench.child", spec_argument(spec)],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        why = "\n".join(proc.stderr.strip().splitlines()[-3:])
        raise BenchError(f"bench run {spec.mode} (outputs {'on' if spec.outputs else 'off'}, {spec.threads} "
                         f"threads) failed: {why}")
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    if clients is not None:
        measured["receipt"] = clients.receipt()
    return measured
