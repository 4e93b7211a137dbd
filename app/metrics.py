"""Run statistics: frames captured and processed, drops by reason, and per-stage latency.

Written by the lanes, read by the summary line (and later by `/metrics` and `/api/stats`). Latencies keep the
most recent samples only, so a camera running for months uses constant memory.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np

LATENCY_SAMPLES = 2048


class Stats:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.captured = 0
        self.processed = 0
        #: monotonic times of the newest captured frame and the newest result (None before the first)
        self.last_capture: float | None = None
        self.last_result: float | None = None
        #: facts about the run for status pages: model, accelerator, runtime, warnings
        self.info: dict[str, object] = {}
        self.drops: Counter[str] = Counter()
        self._latency: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def drop(self, reason: str, count: int = 1) -> None:
        with self._lock:
            self.drops[reason] += count

    def observe(self, timing_ms: dict[str, float]) -> None:
        """Record one processed frame's stage timings."""
        with self._lock:
            self.processed += 1
            self.last_result = time.monotonic()
            for name, ms in timing_ms.items():
                self._latency.setdefault(name, deque(maxlen=LATENCY_SAMPLES)).append(ms)

    def percentile(self, name: str, q: float) -> float | None:
        with self._lock:
            samples = list(self._latency.get(name, ()))
        return float(np.percentile(samples, q)) if samples else None

    def captured_frame(self) -> None:
        self.captured += 1
        self.last_capture = time.monotonic()

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def fps(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.processed / elapsed if elapsed > 0 else 0.0

    def summary(self) -> str:
        """The one line printed when a run ends."""
        drops = sum(self.drops.values())
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.drops.items()))
        line = (f"captured {self.captured}, processed {self.processed}, dropped {drops}"
                f"{f' ({reasons})' if reasons else ''}, {self.fps():.1f} fps")
        p50, p95 = self.percentile("inference", 50), self.percentile("inference", 95)
        if p50 is not None:
            line += f", inference {p50:.1f} ms p50 / {p95:.1f} ms p95"
        return line
