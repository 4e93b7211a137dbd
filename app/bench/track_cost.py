"""`python -m app.bench.track_cost`: what the track stage's tracker costs per frame with N objects in view.

N objects (20 by default) walk across a 1280x720 frame on crossing paths, each detection jittered by a pixel or
two, for a few hundred frames; the time of `update` per frame is the median over the repetitions, so the first
frames (tracks being born) and a busy machine weigh little. `per_frame_ms` takes any tracker factory, so an older
tracker can be timed beside this one in the same process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from app.config import TrackParams
from app.frame import Detection
from app.scene.tracker import Tracker


def walkers(objects: int, frames: int, seed: int = 0) -> list[list[Detection]]:
    """Each frame's detections of `objects` people crossing the frame at their own speeds."""
    rng = np.random.default_rng(seed)
    start = rng.uniform([0, 200], [1200, 600], size=(objects, 2))
    step = rng.uniform(-4, 4, size=(objects, 2))
    out = []
    for frame in range(frames):
        centres = (start + step * frame) % [1280, 720] + rng.normal(0, 1, size=(objects, 2))
        out.append([Detection("person", 0, 0.9, (x - 20, y - 50, x + 20, y + 50)) for x, y in centres])
    return out


def per_frame_ms(make_tracker: Callable[[], Any], objects: int = 20, frames: int = 300, repeat: int = 5) -> float:
    """The median, over `repeat` runs of `frames` frames, of a run's mean time of `update` per frame (ms)."""
    scene = walkers(objects, frames)
    runs = []
    for _ in range(repeat):
        tracker = make_tracker()
        start = time.perf_counter()
        for seq, detections in enumerate(scene):
            tracker.update(detections, seq / 30, seq)
        runs.append((time.perf_counter() - start) / frames * 1000)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.bench.track_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=20, metavar="N", help="objects in view (default 20)")
    args = parser.parse_args(argv)
    if args.objects < 1:
        print("track_cost: --objects must be at least 1", file=sys.stderr)
        return 2
    print(f"track stage, {args.objects} objects: {per_frame_ms(lambda: Tracker(TrackParams()), args.objects):.3f} "
          "ms per frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
