"""Run statistics: frames captured and processed, drops by reason, per-stage latency, and their Prometheus text.
Detections dropped after the model found them (teach's `taught_not`) are counted apart from the frames dropped:
the frame goes on without them.

Written by the lanes, read by the summary line, `/api/stats` and `/metrics`. Latencies keep the most recent
samples only (for percentiles) plus a fixed-bucket histogram per timing (cumulative since start, for Prometheus),
so a camera running for months uses constant memory.

Two rates, one name each: *fps* is always the recent rate, results per second over the last `RATE_WINDOW_S`
(`recent_fps`: `/api/stats` and MQTT stats `fps`, the `smartcam_fps` gauge, the live page, the overlay banner);
*mean fps* is the whole run's average, processed frames over the time since start (`mean_fps`: the summary line
printed when a run ends).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

LATENCY_SAMPLES = 2048
#: histogram upper bounds in seconds: 1 ms to 10 s, dense where CPU and Edge TPU inference land
HISTOGRAM_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5,
                       5.0, 10.0)
#: the window `recent_fps` counts results over
RATE_WINDOW_S = 5.0
#: the state of a component (source, MQTT) that is well, unless its document says `ok` itself
CONNECTED = "connected"
#: a camera's run (`Stats.state`, set by app.cameras): running; failed and rebuilt after a backoff (restarting);
#: failed for good; or ended (its file done, its frames counted, or stopped)
RUNNING, RESTARTING, FAILED, ENDED = "running", "restarting", "failed", "ended"


def is_ok(document: dict[str, object]) -> bool:
    """Whether a health document says its component is well."""
    return bool(document.get("ok", document.get("state") == CONNECTED))
#: timings exported as Prometheus histograms: timing name -> metric name
PROMETHEUS_HISTOGRAMS = {"inference": "smartcam_inference_seconds",
                         "exposure_to_result": "smartcam_exposure_to_result_seconds",
                         "exposure_to_publish": "smartcam_exposure_to_publish_seconds"}


@dataclass
class Histogram:
    """Counts per fixed bucket (not cumulative; `cumulative` makes Prometheus' `le` counts), sum and count."""

    bounds: tuple[float, ...] = HISTOGRAM_BUCKETS_S
    counts: list[int] = field(default_factory=lambda: [0] * (len(HISTOGRAM_BUCKETS_S) + 1))
    sum: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # le is inclusive: value <= bound
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, observations <= le) for every bound and +Inf."""
        running, out = 0, []
        for bound, n in zip((*(_number(b) for b in self.bounds), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def copy(self) -> Histogram:
        return Histogram(self.bounds, list(self.counts), self.sum, self.count)


class Stats:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.captured = 0
        self.processed = 0
        #: monotonic times of the newest captured frame and the newest result (None before the first)
        self.last_capture: float | None = None
        self.last_result: float | None = None
        #: monotonic time of the newest frame motion gating (or detect_fps) chose not to infer
        self.last_skipped: float | None = None
        #: facts about the run for status pages: model, accelerator, runtime, pipeline, camera,
        #: source_description (the device or stream the camera reads)
        self.info: dict[str, object] = {}
        #: warnings worth showing on status pages (a slow Edge TPU), in the order they came
        self.warnings: list[str] = []
        #: component (source, mqtt, http) -> its health document now: at least `state` ("connected" when well, or
        #: an explicit `ok`), with `last_error` and what else it knows; registered by the component, read by anyone
        self.health: dict[str, Callable[[], dict[str, object]]] = {}
        #: other live documents /api/stats and MQTT stats show under their name (motion: the gate's duty cycle)
        self.reports: dict[str, Callable[[], dict[str, object]]] = {}
        self.drops: Counter[str] = Counter()
        #: detections dropped after inference, by reason (`taught_not`: near a taught `--not` example): counters kept
        #: by the stage that drops them, read when shown
        self.detections_dropped: dict[str, Callable[[], int]] = {}
        #: the camera's run (RUNNING, RESTARTING, FAILED, ENDED), its failures so far and the last one's one line,
        #: and when it was last rebuilt after one (monotonic): several cameras outlive one camera's failure
        self.state = RUNNING
        self.failures = 0
        self.last_failure: str | None = None
        self.restarted: float | None = None
        self._latency: dict[str, deque[float]] = {}
        self._histograms: dict[str, Histogram] = {}
        self._recent: deque[float] = deque()  # monotonic times of the results in the last RATE_WINDOW_S
        self._lock = threading.Lock()

    def drop(self, reason: str, count: int = 1) -> None:
        with self._lock:
            self.drops[reason] += count

    def observe(self, timing_ms: dict[str, float]) -> None:
        """Record one processed frame's stage timings."""
        now = time.monotonic()
        with self._lock:
            self.processed += 1
            self.last_result = now
            self._recent.append(now)
            self._forget_before(now - RATE_WINDOW_S)
            for name, ms in timing_ms.items():
                self._record(name, ms)

    def _record(self, name: str, ms: float) -> None:
        """One latency sample (under the lock)."""
        self._latency.setdefault(name, deque(maxlen=LATENCY_SAMPLES)).append(ms)
        self._histograms.setdefault(name, Histogram()).observe(ms / 1000)

    def published(self, t_capture: float) -> None:
        """A frame stamped `t_capture` was handed to every output: its exposure-to-publish time."""
        ms = (time.monotonic() - t_capture) * 1000
        with self._lock:
            self._record("exposure_to_publish", ms)

    def drop_counts(self) -> dict[str, int]:
        """A copy of the drops by reason, safe to read while the lanes count."""
        with self._lock:
            return dict(self.drops)

    def detection_drop_counts(self) -> dict[str, int]:
        """The detections dropped so far, by reason."""
        return {reason: count() for reason, count in list(self.detections_dropped.items())}

    def percentile(self, name: str, q: float) -> float | None:
        with self._lock:
            samples = list(self._latency.get(name, ()))
        return float(np.percentile(samples, q)) if samples else None

    def document(self) -> dict:
        """The run's numbers as one JSON document: `/api/stats` and MQTT's `{prefix}/stats` both send it."""
        drops = self.drop_counts()
        info = dict(self.info)
        timing = {f"{name}_ms": {f"p{q}": None if (v := self.percentile(name, q)) is None else round(v, 2)
                                 for q in (50, 95)} for name in ("inference", "exposure_to_result",
                                                                  "exposure_to_publish")}
        return {**info, "state": self.state, "failures": self.failures, "last_failure": self.last_failure,
                "warnings": list(self.warnings), "fps": round(self.recent_fps(), 2),
                "captured": self.captured, "processed": self.processed, "dropped": sum(drops.values()),
                "drops": drops, "detections_dropped": self.detection_drop_counts(), **timing,
                "uptime_s": round(self.uptime(), 1), "health": self.health_documents(),
                **{name: report() for name, report in list(self.reports.items())}}

    def health_documents(self) -> dict[str, dict[str, object]]:
        """Every registered component's health, by name."""
        return {name: report() for name, report in list(self.health.items())}

    def unhealthy(self) -> list[str]:
        """One line per component that is not well, naming its state and last error."""
        lines = []
        for name, document in self.health_documents().items():
            if not is_ok(document):
                error = document.get("last_error")
                lines.append(f"{name} {document.get('state')}{f': {error}' if error else ''}")
        return lines

    def skipped(self, reason: str) -> None:
        """A frame deliberately not inferred (`no_motion`, `detect_fps`): a drop by that reason, and a sign that
        frames still flow (the watchdog is fed on a still scene)."""
        self.drop(reason)
        self.last_skipped = time.monotonic()

    def last_handled(self) -> float | None:
        """When a frame was last inferred or deliberately skipped."""
        times = [t for t in (self.last_result, self.last_skipped) if t is not None]
        return max(times) if times else None

    def captured_frame(self) -> None:
        self.captured += 1
        self.last_capture = time.monotonic()

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def mean_fps(self) -> float:
        """Results per second averaged over the whole run, for the summary of a run that has ended."""
        elapsed = time.monotonic() - self.started
        return self.processed / elapsed if elapsed > 0 else 0.0

    def recent_fps(self) -> float:
        """Results per second over the last RATE_WINDOW_S (0 while stalled), for live pages and gauges."""
        now = time.monotonic()
        with self._lock:
            self._forget_before(now - RATE_WINDOW_S)
            count = len(self._recent)
        window = min(RATE_WINDOW_S, max(1.0, now - self.started))  # no wild rates in the first second
        return count / window

    def _forget_before(self, cutoff: float) -> None:
        while self._recent and self._recent[0] < cutoff:
            self._recent.popleft()

    def summary(self) -> str:
        """The one line printed when a run ends."""
        drops = sum(self.drops.values())
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.drops.items()))
        line = (f"captured {self.captured}, processed {self.processed}, dropped {drops}"
                f"{f' ({reasons})' if reasons else ''}, mean {self.mean_fps():.1f} fps")
        p50, p95 = self.percentile("inference", 50), self.percentile("inference", 95)
        if p50 is not None:
            line += f", inference {p50:.1f} ms p50 / {p95:.1f} ms p95"
        return line

    def prometheus(self) -> str:
        """Everything above in Prometheus text exposition format 0.0.4, read consistently under one lock."""
        fps, uptime, health = self.recent_fps(), self.uptime(), self.health_documents()
        detection_drops = self.detection_drop_counts()
        with self._lock:
            captured, processed, drops = self.captured, self.processed, dict(self.drops)  # one consistent read
            histograms = {metric: self._histograms.get(name, Histogram()).copy()
                          for name, metric in PROMETHEUS_HISTOGRAMS.items()}
        info = {k: str(v) for k, v in self.info.items()
                if k in ("model", "accelerator", "runtime", "pipeline", "camera", "source_description")}
        parts = [
            prometheus_family("smartcam_frames_captured_total", "counter", "Frames read from the source.",
                              [({}, captured)]),
            prometheus_family("smartcam_frames_processed_total", "counter", "Frames through inference and postprocess.",
                              [({}, processed)]),
            prometheus_family("smartcam_frames_dropped_total", "counter", "Frames dropped, by reason.",
                              [({"reason": r}, n) for r, n in sorted(drops.items())]),
            prometheus_family("smartcam_detections_dropped_total", "counter",
                              "Detections dropped after inference (the frame kept), by reason.",
                              [({"reason": r}, n) for r, n in sorted(detection_drops.items())]),
            prometheus_family("smartcam_fps", "gauge",
                              f"Processed frames per second over the last {RATE_WINDOW_S:g} s.", [({}, round(fps, 3))]),
            prometheus_family("smartcam_uptime_seconds", "gauge", "Seconds since the pipeline started.",
                              [({}, round(uptime, 3))]),
            prometheus_family("smartcam_info", "gauge",
                              "The run: model, accelerator, runtime, pipeline, camera, source_description.",
                              [(info, 1)]),
            prometheus_family("smartcam_component_up", "gauge",
                              "1 when a component (source, mqtt, ...) is connected, else 0.",
                              [({"component": name}, int(is_ok(doc)))
                               for name, doc in sorted(health.items())]),
            prometheus_family("smartcam_component_state", "gauge", "Each component's state, as a label.",
                              [({"component": name, "state": str(doc.get("state"))}, 1)
                               for name, doc in sorted(health.items())]),
            prometheus_histogram("smartcam_inference_seconds", "Model invocation time.",
                                 histograms["smartcam_inference_seconds"]),
            prometheus_histogram("smartcam_exposure_to_result_seconds",
                                 "From the frame's stamp (its exposure where the source knows it) to its result.",
                                 histograms["smartcam_exposure_to_result_seconds"]),
            prometheus_histogram("smartcam_exposure_to_publish_seconds",
                                 "From the frame's stamp to its hand-over to every output.",
                                 histograms["smartcam_exposure_to_publish_seconds"]),
        ]
        return "".join(parts)


def prometheus_family(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> str:
    """One metric family: HELP and TYPE lines, then `name{labels} value` per sample."""
    lines = [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples]
    return "\n".join(lines) + "\n"


def prometheus_histogram(name: str, help_text: str, histogram: Histogram) -> str:
    lines = [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} histogram"]
    lines += [f'{name}_bucket{{le="{le}"}} {n}' for le, n in histogram.cumulative()]
    lines += [f"{name}_sum {_number(histogram.sum)}", f"{name}_count {histogram.count}"]
    return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    escaped = (str(v).replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n") for v in labels.values())
    return "{" + ",".join(f'{k}="{v}"' for k, v in zip(labels, escaped, strict=True)) + "}"


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))
