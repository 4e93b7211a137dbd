"""`python -m app bench`: the real pipeline at each thread count, one Markdown table row per count."""

from __future__ import annotations

import subprocess
import sys

from conftest import PET_LABEL_FILE, PET_MODEL, PROJECT


def test_bench_prints_a_row_per_thread_count():
    proc = subprocess.run(
        [sys.executable, "-m", "app", "bench", "--model", str(PET_MODEL), "--labels", str(PET_LABEL_FILE),
         "--threads", "1,2", "--frames", "20"],
        cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [line.strip("|").split("|") for line in proc.stdout.splitlines() if line.startswith("| ")]
    header, body = rows[0], rows[1:]
    assert [cell.strip() for cell in header][:2] == ["threads", "fps"]
    assert [int(row[0]) for row in body] == [1, 2]
    for row in body:
        assert float(row[1]) > 0 and float(row[3]) > 0  # fps and inference ms were measured


def test_bench_rejects_bad_thread_counts():
    proc = subprocess.run([sys.executable, "-m", "app", "bench", "--threads", "one"], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--threads one" in proc.stderr
