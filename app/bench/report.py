"""The bench's runs as a table, a JSON document and a plot.

One row per (mode, outputs, threads): the median over its repetitions of each number, and the ratios a claim is
made of: fps against `limit` (invoke alone) and against the `loop` with the same outputs, the CPU a frame
costs beyond `invoke()` (the run's CPU per frame less `limit`'s at the same thread count) against the loop's, and
the decoder's time (the postprocess stage) against `invoke()`'s in the same runs. A `clips` row (the pipeline with
event clips on) is also set against the `pipeline` row with the same outputs and threads, in a table of its own: its
CPU per frame and peak RSS beside the pipeline's, and the clips its runs wrote.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from app.errors import ConfigError

HEADER = ["mode", "outputs", "threads", "fps", "× limit", "× loop", "inference ms p50", "inference ms p95",
          "postprocess ms p50", "postprocess ÷ inference", "mask ms p50", "overlay ms p50", "exposure→result ms p50",
          "p95", "p99", "CPU ms/frame", "CPU ms/captured frame", "beyond invoke ms", "beyond × loop", "peak RSS MB",
          "first result s", "drops"]

Key = tuple[str, bool, int]


def key(run: dict) -> Key:
    return run["mode"], run["outputs"], run["threads"]


def summarise(runs: list[dict]) -> list[dict]:
    """One row per (mode, outputs, threads), in the order first measured: medians and ratios."""
    groups: dict[Key, list[dict]] = defaultdict(list)
    for run in runs:
        groups[key(run)].append(run)

    def median(group: list[dict], pick: Callable[[dict], float]) -> float:
        return statistics.median(pick(run) for run in group)

    rows = []
    for (mode, outputs, threads), group in groups.items():
        rows.append({
            "mode": mode, "outputs": outputs, "threads": threads, "runs": len(group),
            "fps": median(group, lambda r: r["fps"]),
            "fps_range": [min(r["fps"] for r in group), max(r["fps"] for r in group)],
            "inference_ms_p50": median(group, lambda r: r["inference_ms"]["p50"]),
            "inference_ms_p95": median(group, lambda r: r["inference_ms"]["p95"]),
            **_stage_medians(group),
            **{f"exposure_to_result_ms_{q}": statistics.median(r["exposure_to_result_ms"][q] for r in group)
               for q in ("p50", "p95", "p99")},
            "cpu_ms_per_frame": median(group, lambda r: r["cpu_ms_per_frame"]),
            "cpu_ms_per_captured_frame": median(group, lambda r: r["cpu_ms_per_captured_frame"]),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in group),
            "first_result_s": median(group, lambda r: r["first_result_s"]),
            "drops": _summed_drops(group),
            **({"receipt": _receipt(group)} if all("receipt" in r for r in group) else {}),
        })
    by_key = {(r["mode"], r["outputs"], r["threads"]): r for r in rows}
    for row in rows:
        limit = by_key.get(("limit", False, row["threads"]))
        loop = by_key.get(("loop", row["outputs"], row["threads"]))
        row["beyond_invoke_ms"] = row["cpu_ms_per_frame"] - limit["cpu_ms_per_frame"] if limit else None
        row["fps_vs_limit"] = row["fps"] / limit["fps"] if limit and limit["fps"] else None
        row["fps_vs_loop"] = row["fps"] / loop["fps"] if loop and loop["fps"] else None
    for row in rows:
        loop = by_key.get(("loop", row["outputs"], row["threads"]))
        ours, theirs = row["beyond_invoke_ms"], loop and loop["beyond_invoke_ms"]
        row["beyond_vs_loop"] = ours / theirs if ours is not None and theirs else None
    for row in rows:
        without = by_key.get(("pipeline", row["outputs"], row["threads"]))
        if row["mode"] == "clips" and without is not None:
            row["clip_cost"] = _clip_cost(groups[key(row)], groups[key(without)], row, without)
    return rows


def _clip_cost(with_clips: list[dict], without: list[dict], row: dict, row_without: dict) -> dict:
    """The CPU per frame and peak RSS of the runs with clips against those without (same outputs and threads): each
    repetition's own ratio (its clips run over its pipeline run, side by side, so a slow minute of a shared machine
    moves both), their median and range; the peak RSS's growth; the clips written and their bytes, summed."""
    paired = [on["cpu_ms_per_frame"] / off["cpu_ms_per_frame"] for on, off in zip(with_clips, without, strict=True)]
    return {
        "cpu_ms_per_frame_without": row_without["cpu_ms_per_frame"],
        "cpu_vs_without": statistics.median(paired),
        "cpu_vs_without_range": [min(paired), max(paired)],
        "peak_rss_mb_without": row_without["peak_rss_mb"],
        "peak_rss_growth_mb": row["peak_rss_mb"] - row_without["peak_rss_mb"],
        "clips_written": sum(run["clips"]["written"] for run in with_clips),
        "clip_bytes": sum(run["clips"]["bytes"] for run in with_clips),
    }


def _stage_medians(group: list[dict]) -> dict[str, float | None]:
    """The decoder's p50 ms and its ratio to the same run's inference p50, a segmentation's source-size mask p50 ms
    and the overlay's, each the median over the runs; None where not measured (`limit` decodes nothing)."""
    timed = [run for run in group if "postprocess_ms" in run]

    def p50(name: str) -> float | None:
        measured = [run[name]["p50"] for run in group if name in run]
        return statistics.median(measured) if measured else None

    return {
        "postprocess_ms_p50": p50("postprocess_ms"),
        "postprocess_vs_inference": statistics.median(r["postprocess_ms"]["p50"] / r["inference_ms"]["p50"]
                                                      for r in timed) if timed else None,
        "mask_ms_p50": p50("mask_ms"), "overlay_ms_p50": p50("overlay_ms"),
    }


def _receipt(group: list[dict]) -> dict[str, dict]:
    """`robot` runs: per transport, the frames received of those processed, and the medians of the percentiles of
    exposure to receipt and result to receipt."""
    out = {}
    for transport in group[0]["receipt"]:
        runs = [r["receipt"][transport] for r in group]
        timed = [r for r in runs if r["frames"]]
        out[transport] = {"frames": sum(r["frames"] for r in runs), "processed": sum(r["frames"] for r in group),
                          **{f"{what}_{q}": statistics.median(r[what][q] for r in timed) if timed else None
                             for what in ("exposure_to_receipt_ms", "result_to_receipt_ms") for q in ("p50", "p99")}}
    return out


def _summed_drops(group: list[dict]) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for run in group:
        for reason, count in run["drops"].items():
            total[reason] += count
    return dict(sorted(total.items()))


def _cells(row: dict) -> list[str]:
    def number(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    drops = ", ".join(f"{reason} {count}" for reason, count in row["drops"].items()) or "0"
    return [row["mode"], "on" if row["outputs"] else "off", str(row["threads"]), number(row["fps"]),
            ratio(row["fps_vs_limit"]), ratio(row["fps_vs_loop"]), number(row["inference_ms_p50"]),
            number(row["inference_ms_p95"]), number(row["postprocess_ms_p50"], 2),
            percent(row["postprocess_vs_inference"]), number(row["mask_ms_p50"], 2), number(row["overlay_ms_p50"], 2),
            number(row["exposure_to_result_ms_p50"]),
            number(row["exposure_to_result_ms_p95"]), number(row["exposure_to_result_ms_p99"]),
            number(row["cpu_ms_per_frame"]), number(row["cpu_ms_per_captured_frame"]),
            number(row["beyond_invoke_ms"]), ratio(row["beyond_vs_loop"]),
            number(row["peak_rss_mb"], 0), number(row["first_result_s"], 2), drops]


def table(rows: list[dict]) -> str:
    """A Markdown table, ready for the README; with `robot` runs, a second one of their clients' receipt."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    robots = [row for row in rows if "receipt" in row]
    if robots:
        lines += ["", "| " + " | ".join(RECEIPT_HEADER) + " |", "|" + "---|" * len(RECEIPT_HEADER)]
        lines += ["| " + " | ".join(cells) + " |" for row in robots for cells in _receipt_cells(row)]
    clipped = [row for row in rows if "clip_cost" in row]
    if clipped:
        lines += ["", "| " + " | ".join(CLIPS_HEADER) + " |", "|" + "---|" * len(CLIPS_HEADER)]
        lines += ["| " + " | ".join(_clip_cells(row)) + " |" for row in clipped]
    return "\n".join(lines)


CLIPS_HEADER = ["outputs", "threads", "runs", "CPU ms/frame no clips", "CPU ms/frame clips",
                "CPU clips ÷ none, by repetition", "range", "peak RSS MB no clips", "peak RSS MB clips",
                "RSS growth MB", "clips written", "clip MB"]


def _clip_cells(row: dict) -> list[str]:
    cost = row["clip_cost"]
    low, high = cost["cpu_vs_without_range"]
    return ["on" if row["outputs"] else "off", str(row["threads"]), str(row["runs"]),
            f"{cost['cpu_ms_per_frame_without']:.1f}", f"{row['cpu_ms_per_frame']:.1f}",
            f"{cost['cpu_vs_without']:.3f}x",
            f"{low:.3f}–{high:.3f}x", f"{cost['peak_rss_mb_without']:.0f}", f"{row['peak_rss_mb']:.0f}",
            f"{cost['peak_rss_growth_mb']:+.1f}", str(cost["clips_written"]), f"{cost['clip_bytes'] / 1e6:.1f}"]


RECEIPT_HEADER = ["mode", "outputs", "threads", "client", "frames received / processed", "exposure→receipt ms p50",
                  "p99", "result→receipt ms p50", "p99"]


def _receipt_cells(row: dict) -> list[list[str]]:
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    return [[row["mode"], "on" if row["outputs"] else "off", str(row["threads"]), transport,
             f"{got['frames']} / {got['processed']}", number(got["exposure_to_receipt_ms_p50"]),
             number(got["exposure_to_receipt_ms_p99"]), number(got["result_to_receipt_ms_p50"]),
             number(got["result_to_receipt_ms_p99"])] for transport, got in row["receipt"].items()]


def write_json(path: Path, conditions: dict, runs: list[dict], rows: list[dict]) -> None:
    path.write_text(json.dumps({"conditions": conditions, "rows": rows, "runs": runs}, indent=1) + "\n")


def plot(path: Path, runs: list[dict], rows: list[dict]) -> None:
    """fps and CPU per frame per row, and exposure-to-result over time per run, as one PNG."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plot needs matplotlib: .venv/bin/pip install matplotlib") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    names = [f"{r['mode']} {'on' if r['outputs'] else 'off'} {r['threads']}t" for r in rows]
    figure, (fps_axes, cpu_axes, latency_axes) = pyplot.subplots(3, 1, figsize=(10, 11))
    fps_axes.bar(names, [r["fps"] for r in rows])
    fps_axes.set_ylabel("fps (median)")
    cpu_axes.bar(names, [r["cpu_ms_per_frame"] for r in rows])
    cpu_axes.set_ylabel("CPU ms per frame")
    for axes in (fps_axes, cpu_axes):
        axes.tick_params(axis="x", labelrotation=30)
    for run in runs:
        if run["mode"] != "limit":
            times, latencies = zip(*run["series"], strict=True) if run["series"] else ((), ())
            latency_axes.plot(times, latencies, linewidth=0.8,
                              label=f"{run['mode']} {'on' if run['outputs'] else 'off'} {run['threads']}t")
    latency_axes.set_xlabel("seconds since the first result")
    latency_axes.set_ylabel("exposure→result ms")
    latency_axes.legend(fontsize="small", ncol=2)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
