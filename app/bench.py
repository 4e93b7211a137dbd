"""The benchmark: the real pipeline, end to end, at each thread count, reported as one table.

Performance is measured, not assumed: every number in the README's performance table comes from here. It runs
the three lanes exactly as `run` does (a live source: stale frames dropped, as with a camera) with no outputs,
so the figures are what a camera gets before publishing.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.config import load_settings
from app.metrics import Stats
from app.pipeline import Pipeline


@dataclass(frozen=True)
class BenchRow:
    threads: int
    stats: Stats

    def cells(self) -> list[str]:
        def ms(name: str, q: float = 50) -> str:
            value = self.stats.percentile(name, q)
            return f"{value:.1f}" if value is not None else "-"

        return [str(self.threads), f"{self.stats.mean_fps():.1f}", ms("preprocess"), ms("inference"),
                ms("inference", 95), ms("postprocess"), ms("capture_to_result"), str(sum(self.stats.drops.values()))]


HEADER = ["threads", "fps", "preprocess ms", "inference ms p50", "inference ms p95", "postprocess ms",
          "capture→result ms", "dropped"]


def bench(pipeline: str, config: str | None, overrides: list[str], threads: list[int], frames: int) -> list[BenchRow]:
    rows = []
    for count in threads:
        settings = load_settings(pipeline, config, [*overrides, f"stages.inference.threads={count}"])
        rows.append(BenchRow(count, Pipeline(settings, []).run(max_frames=frames)))
    return rows


def table(rows: list[BenchRow]) -> str:
    """A Markdown table, ready for the README."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)
