"""`python -m app.bench.mot DIR`: the tracker on MOT15's public detections, scored by py-motmetrics.

DIR holds `<sequence>/det/det.txt` in the MOT Challenge format (frame, -1, x, y, w, h, score, ...), as SORT's
repository ships them for MOT15 (github.com/abewley/sort, data/train). The ground truth is the one py-motmetrics
ships in motmetrics/data/ (TUD-Campus, TUD-Stadtmitte), so only sequences found there are scored. Each sequence's
detections go through `Tracker.update` frame by frame, as the `track` stage feeds it; the tracked detections (those
with a track id) are the hypotheses, matched to the ground truth at IoU 0.5. `--drop 0.3` removes that fraction of
the detections first (a fixed seed), to see how the tracker holds on to objects the detector misses.
`--results DIR2` scores another tracker's output instead (`<sequence>.txt`, MOT format), with the same code;
`--set NAME=VALUE` (repeatable) changes one of the `track` stage's parameters from its default, e.g.
`--set confirm_at_start=true`.
py-motmetrics is a bench dependency (`pip install -e .[bench]`), not a runtime one.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from app.config import TrackParams
from app.frame import Detection
from app.scene.tracker import Tracker, iou_matrix

SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")
METRICS = {"mota": "MOTA", "idf1": "IDF1", "num_switches": "ID switches", "num_false_positives": "FP",
           "num_misses": "FN"}
#: the frame interval the detections are fed at (seconds): MOT15's TUD sequences are 25 fps
FRAME_S = 1 / 25


def read_detections(path: Path) -> dict[int, list[Detection]]:
    """A det.txt as each frame's detections (frames numbered from 1), boxes as x0, y0, x1, y1."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    last = max(int(frame) for frame in rows[:, 0])  # (numpy 2.3's stubs refuse ndarray.max() without arguments)
    frames: dict[int, list[Detection]] = {frame: [] for frame in range(1, last + 1)}
    for frame, _, x, y, w, h, score, *_ in rows:
        frames[int(frame)].append(Detection("person", 0, float(score), (x, y, x + w, y + h)))
    return frames


def drop(frames: dict[int, list[Detection]], fraction: float, seed: int = 0) -> dict[int, list[Detection]]:
    """The same frames with `fraction` of the detections removed at random (the same ones for the same seed)."""
    rng = np.random.default_rng(seed)
    return {frame: [d for d in detections if rng.random() >= fraction] for frame, detections in frames.items()}


def track(frames: dict[int, list[Detection]], params: TrackParams) -> str:
    """Run the tracker over the frames; its tracked detections as MOT result lines."""
    tracker = Tracker(params)
    lines = []
    for frame in sorted(frames):
        tracked, _ = tracker.update(frames[frame], frame * FRAME_S, frame)
        for d in tracked:
            if d.track_id is not None:
                x0, y0, x1, y1 = d.box
                lines.append(f"{frame},{d.track_id},{x0:.2f},{y0:.2f},{x1 - x0:.2f},{y1 - y0:.2f},1,-1,-1,-1")
    return "\n".join(lines) + "\n"


def score(results: dict[str, str]) -> dict[str, dict[str, float]]:
    """Each sequence's MOT result lines against motmetrics' ground truth, and `overall`: the METRICS, in
    percent for MOTA and IDF1."""
    import motmetrics as mm

    data = Path(mm.__file__).parent / "data"
    accumulators = []
    for sequence, text in results.items():
        truth = mm.io.loadtxt(str(data / sequence / "gt.txt"), fmt="mot15-2D", min_confidence=1)
        hypotheses = mm.io.loadtxt(io.StringIO(text), fmt="mot15-2D")
        accumulators.append(_accumulate(mm.MOTAccumulator(), truth, hypotheses))
    summary = mm.metrics.create().compute_many(accumulators, names=list(results), metrics=list(METRICS),
                                               generate_overall=True)
    return {name: {METRICS[m]: float(row[m]) * (100 if m in ("mota", "idf1") else 1) for m in METRICS}
            for name, row in summary.iterrows()}


def _accumulate(accumulator, truth, hypotheses):
    """What motmetrics.utils.compare_to_groundtruth(..., "iou", distth=0.5) does, with the IoU computed here: its
    own uses np.asfarray, which numpy 2 removed."""
    frames = truth.index.union(hypotheses.index).levels[0]
    truth_by_frame = dict(iter(truth.groupby("FrameId")))
    hypotheses_by_frame = dict(iter(hypotheses.groupby("FrameId")))
    for frame in frames:
        objects = truth_by_frame.get(frame)
        guesses = hypotheses_by_frame.get(frame)
        object_ids = [] if objects is None else list(objects.index.get_level_values("Id"))
        guess_ids = [] if guesses is None else list(guesses.index.get_level_values("Id"))
        distances = np.empty((len(object_ids), len(guess_ids)))
        if object_ids and guess_ids:
            overlap = iou_matrix(_corners(objects), _corners(guesses))
            distances = np.where(overlap >= 0.5, 1 - overlap, np.nan)
        accumulator.update(object_ids, guess_ids, distances, frameid=frame)
    return accumulator


def _corners(rows) -> np.ndarray:
    x, y, w, h = (rows[column].to_numpy(float) for column in ("X", "Y", "Width", "Height"))
    return np.stack([x, y, x + w, y + h], axis=1)


def results_of(folder: Path, params: TrackParams, fraction: float, seed: int) -> dict[str, str]:
    """The tracker's result lines for each sequence of SEQUENCES found in `folder`."""
    found = [s for s in SEQUENCES if (folder / s / "det" / "det.txt").is_file()]
    if not found:
        raise FileNotFoundError(f"{folder}: no {' or '.join(SEQUENCES)}/det/det.txt in it")
    return {s: track(drop(read_detections(folder / s / "det" / "det.txt"), fraction, seed), params) for s in found}


def params_of(settings: list[str]) -> TrackParams:
    """The track parameters with each `NAME=VALUE` of `settings` in place of its default."""
    return TrackParams.model_validate(dict(setting.partition("=")[::2] for setting in settings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.bench.mot", description=__doc__.split("\n\n")[0])
    parser.add_argument("detections", type=Path, metavar="DIR", help="holds <sequence>/det/det.txt")
    parser.add_argument("--drop", type=float, default=0.0, metavar="F", help="drop this fraction of detections")
    parser.add_argument("--seed", type=int, default=0, help="the random seed of --drop (default 0)")
    parser.add_argument("--results", type=Path, metavar="DIR2", help="score <sequence>.txt files from DIR2 instead")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a track parameter other than its default (repeatable)")
    args = parser.parse_args(argv)
    try:
        params = params_of(args.set)
    except ValidationError as error:
        problem = error.errors()[0]
        print(f"mot: --set {'.'.join(map(str, problem['loc']))}: {problem['msg']}", file=sys.stderr)
        return 2
    try:
        if args.results:
            results = {s: (args.results / f"{s}.txt").read_text() for s in SEQUENCES}
        else:
            results = results_of(args.detections, params, args.drop, args.seed)
    except OSError as error:
        print(f"mot: {error}", file=sys.stderr)
        return 2
    print("| sequence | " + " | ".join(METRICS.values()) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    for name, row in score(results).items():
        print(f"| {name} | " + " | ".join(f"{v:.1f}" if k in ("MOTA", "IDF1") else f"{v:.0f}"
                                          for k, v in row.items()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
