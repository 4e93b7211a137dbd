"""`python -m app bench`: limit, loop and pipeline, outputs off and on, each run in its own process, reported with
every column, as JSON and as a plot; the camera it makes of a clip; the ratios it reports; clips on against off."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from app.bench.camera import PacedCamera
from app.bench.report import CLIPS_HEADER, HEADER, summarise
from app.clips.ring import PacketRing
from app.config import CameraConfig
from app.sources import build_source
from app.sources.base import Captured, Source
from conftest import IMAGES, MODELS, PET_LABEL_FILE, PET_MODEL, PROJECT

PET_ARGS = ["--model", str(PET_MODEL), "--labels", str(PET_LABEL_FILE)]


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", "bench", *PET_ARGS, *args], cwd=PROJECT,
                          capture_output=True, text=True, timeout=600)


def table_rows(stdout: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in stdout.splitlines() if line.startswith("| ") and not line.startswith("|---")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One small bench of every mode, outputs off and on, on a clip made from cat_720p.jpg."""
    folder = tmp_path_factory.mktemp("bench")
    proc = bench("--clip-from", str(IMAGES / "cat_720p.jpg"), "--threads", "1", "--frames", "12", "--repeat", "1",
                 "--json", str(folder / "bench.json"), "--plot", str(folder / "bench.png"))
    assert proc.returncode == 0, proc.stderr
    return proc, folder


def test_bench_reports_every_mode_with_every_column(report):
    proc, _ = report
    header, *rows = table_rows(proc.stdout)
    assert header == HEADER
    assert [row[:3] for row in rows] == [["limit", "off", "1"], ["loop", "off", "1"], ["loop", "on", "1"],
                                         ["pipeline", "off", "1"], ["pipeline", "on", "1"]]
    for row in rows:
        assert len(row) == len(HEADER)
        cells = dict(zip(HEADER, row, strict=True))
        for column in ("fps", "inference ms p50", "exposure→result ms p50", "p99", "CPU ms/frame",
                       "CPU ms/captured frame", "peak RSS MB", "first result s"):
            assert float(cells[column]) > 0, (column, row)
        assert cells["× limit"].endswith("x") and cells["beyond invoke ms"] != "-"
        if row[0] == "limit":  # invoke alone: nothing decoded
            assert cells["postprocess ms p50"] == "-" and cells["postprocess ÷ inference"] == "-"
        else:  # the loop and the pipeline time their decoder
            assert float(cells["postprocess ms p50"]) > 0 and cells["postprocess ÷ inference"].endswith("%")
        assert cells["mask ms p50"] == "-"  # a detector has no mask
        drawn = row[0] == "pipeline" and row[1] == "on"  # the probe draws the overlay with the outputs on
        assert (cells["overlay ms p50"] != "-") == drawn and (not drawn or float(cells["overlay ms p50"]) > 0)
    loops = [dict(zip(HEADER, row, strict=True)) for row in rows if row[0] == "loop"]
    assert all(cells["× loop"] == "1.00x" for cells in loops)


def test_gated_spends_less_cpu_per_captured_frame_than_the_pipeline_on_a_still_scene():
    """A still scene with nothing the model finds, as a 30 fps camera: gated infers its first frame and then only
    at the keep-alive, so its CPU per captured frame is a fraction of the ungated pipeline's (both measured here)."""
    proc = bench("--source", str(IMAGES / "owl.jpg"), "--live-fps", "30", "--modes", "pipeline,gated",
                 "--outputs", "off", "--threads", "1", "--frames", "45", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    header, *rows = table_rows(proc.stdout)
    cells = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert list(cells) == ["pipeline", "gated"]
    assert "no_motion" in cells["gated"]["drops"] and "no_motion" not in cells["pipeline"]["drops"]
    assert float(cells["gated"]["CPU ms/captured frame"]) < float(cells["pipeline"]["CPU ms/captured frame"]) / 2


def test_robot_mode_times_the_receipt_of_every_frame_at_a_udp_and_a_zeromq_client(tmp_path):
    """The pipeline with its robot outputs on, their clients in the bench's process: every processed frame's UDP
    datagram arrives (a ZeroMQ subscriber may miss the first few while it joins), with exposure-to-receipt at least
    the result's own latency."""
    proc = bench("--clip-from", str(IMAGES / "cat_720p.jpg"), "--live-fps", "30", "--modes", "robot", "--outputs",
                 "off", "--threads", "1", "--frames", "30", "--repeat", "1", "--json", str(tmp_path / "bench.json"))
    assert proc.returncode == 0, proc.stderr
    rows = table_rows(proc.stdout)
    receipt = [dict(zip(rows[2], row, strict=True)) for row in rows[3:]]
    assert [(row["mode"], row["client"]) for row in receipt] == [("robot", "udp"), ("robot", "zmq")]
    assert receipt[0]["frames received / processed"] == "30 / 30"
    received, processed = map(int, receipt[1]["frames received / processed"].split(" / "))
    assert processed == 30 and 20 <= received <= 30
    (run,) = json.loads((tmp_path / "bench.json").read_text())["runs"]
    for transport in ("udp", "zmq"):
        got = run["receipt"][transport]
        assert got["exposure_to_receipt_ms"]["p50"] > run["inference_ms"]["p50"]
        assert 0 < got["result_to_receipt_ms"]["p50"] <= got["exposure_to_receipt_ms"]["p50"]


def test_a_segmentation_pipeline_times_its_decoder_and_its_source_size_mask():
    """DeepLab through `segment`: the decoder (class map and areas) in the inference lane and the mask at the
    source's size (what privacy builds) in the output lane, each timed per result beside the same run's invoke."""
    proc = subprocess.run([sys.executable, "-m", "app", "bench", "--pipeline", "segment", "--model",
                           str(MODELS / "deeplabv3_mnv2_pascal_quant.tflite"), "--labels",
                           str(MODELS / "pascal_voc_segmentation_labels.txt"), "--source", str(IMAGES / "cat.bmp"),
                           "--modes", "pipeline", "--outputs", "off", "--threads", "1", "--frames", "4",
                           "--repeat", "1"], cwd=PROJECT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    header, row = table_rows(proc.stdout)
    cells = dict(zip(header, row, strict=True))
    assert float(cells["postprocess ms p50"]) > 0 and float(cells["mask ms p50"]) > 0
    assert cells["postprocess ÷ inference"].endswith("%")


def test_bench_writes_json_with_every_run_and_a_plot(report):
    _, folder = report
    document = json.loads((folder / "bench.json").read_text())
    assert document["conditions"]["frames"] == 12 and document["conditions"]["cpus"] >= 1
    assert len(document["runs"]) == 5 and len(document["rows"]) == 5
    for run in document["runs"]:
        assert run["frames"] == 12 and run["peak_rss_mb"] > 0 and run["series"]
        assert set(run["exposure_to_result_ms"]) == {"p50", "p95", "p99"}
        assert len(run["exposure_to_result_p99_by_fifth_ms"]) == 5
    assert (folder / "bench.png").read_bytes().startswith(b"\x89PNG")


def test_bench_paces_the_source_like_a_camera_with_live_fps():
    proc = bench("--source", str(IMAGES / "cat.bmp"), "--threads", "1", "--frames", "8", "--repeat", "1",
                 "--modes", "pipeline", "--outputs", "off", "--live-fps", "20")
    assert proc.returncode == 0, proc.stderr
    rows = table_rows(proc.stdout)[1:]
    assert [row[:3] for row in rows] == [["pipeline", "off", "1"]] and float(rows[0][3]) > 0


@pytest.mark.parametrize("args, message", [
    (["--threads", "one"], "--threads one"),
    (["--modes", "fast"], "--modes fast: expected some of limit,loop,pipeline"),
    (["--outputs", "maybe"], "--outputs maybe"),
    (["--frames", "1"], "frames at least 2"),
])
def test_bench_rejects_bad_arguments_in_one_line(args, message):
    proc = subprocess.run([sys.executable, "-m", "app", "bench", *args], cwd=PROJECT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("source", [["--clip-from", str(IMAGES / "cat_720p.jpg")],
                                    ["--source", str(IMAGES / "cat.bmp")]], ids=["h264 remuxed", "raw encoded"])
def test_clips_mode_writes_clips_of_the_cat_and_reports_them_against_the_pipeline(source, tmp_path):
    """`clips` is the pipeline with event clips on: with the cat in every frame, its run writes a clip (an H.264
    file's packets remuxed, an image's frames encoded), and its table sets it against `pipeline`, run alike."""
    proc = bench(*source, "--modes", "pipeline,clips", "--outputs", "off", "--threads", "1", "--frames", "20",
                 "--repeat", "1", "--json", str(tmp_path / "bench.json"))
    assert proc.returncode == 0, proc.stderr
    rows = table_rows(proc.stdout)
    assert [row[0] for row in rows[1:3]] == ["pipeline", "clips"] and rows[3] == CLIPS_HEADER
    (cells,) = [dict(zip(CLIPS_HEADER, row, strict=True)) for row in rows[4:]]
    assert int(cells["clips written"]) >= 1 and float(cells["CPU ms/frame clips"]) > 0
    assert cells["CPU clips ÷ none, by repetition"].endswith("x") and float(cells["peak RSS MB clips"]) > 0
    runs = {run["mode"]: run for run in json.loads((tmp_path / "bench.json").read_text())["runs"]}
    assert runs["clips"]["clips"]["written"] >= 1 and runs["clips"]["clips"]["bytes"] > 0
    assert "clips" not in runs["pipeline"]


def test_a_paced_camera_lets_an_h264_file_fill_the_clip_ring_itself(cat_clip):
    """Paced by `--live-fps`, an H.264 file still fills the camera's ring with its own packets (remuxed, so the
    capture lane encodes nothing), every packet it demuxes, read or skipped."""
    camera = PacedCamera(build_source(CameraConfig(source=str(cat_clip))), fps=100)
    camera.ring = ring = PacketRing(10)
    camera.open()
    try:
        assert camera.fills_ring
        camera.read()
        time.sleep(0.1)  # frames exposed meanwhile are skipped
        camera.read()
    finally:
        camera.close()
    assert camera.skipped > 0 and len(ring.after(0)) >= camera.skipped + 2  # the frames read and those skipped


def test_clip_costs_set_each_clips_row_against_the_pipeline_with_the_same_outputs_and_threads():
    """Outputs off: the clips rows against the pipeline's with the outputs off, not on (CPU 30, RSS 250)."""
    def run(mode, outputs, cpu, rss, clips=None):
        return {"mode": mode, "outputs": outputs, "threads": 1, "fps": 10, "cpu_ms_per_frame": cpu,
                "cpu_ms_per_captured_frame": cpu, "inference_ms": {"p50": 1, "p95": 1}, "peak_rss_mb": rss,
                "first_result_s": 1, "drops": {}, "exposure_to_result_ms": {"p50": 1, "p95": 1, "p99": 1},
                **({"clips": {"written": clips, "bytes": 1000 * clips}} if clips is not None else {})}

    rows = {(r["mode"], r["outputs"]): r for r in summarise([
        run("pipeline", False, 20, 200), run("clips", False, 22, 205, 2), run("pipeline", True, 30, 250),
        run("pipeline", False, 30, 201), run("clips", False, 30, 203, 1), run("pipeline", True, 30, 250)])}
    cost = rows["clips", False]["clip_cost"]
    # each repetition's clips run over its own pipeline run (1.1 and 1.0), not the medians' ratio (26 / 25)
    assert cost["cpu_ms_per_frame_without"] == 25 and cost["cpu_vs_without"] == pytest.approx(1.05)
    assert cost["cpu_vs_without_range"] == pytest.approx([1.0, 1.1])
    assert cost["peak_rss_mb_without"] == 201 and cost["peak_rss_growth_mb"] == 4
    assert cost["clips_written"] == 3 and cost["clip_bytes"] == 3000
    assert "clip_cost" not in rows["pipeline", False]


class Numbered(Source):
    """Frame k is a 1x1 image of value k, so a test can tell which frame a read delivered."""

    live = reconnects = False

    def __init__(self) -> None:
        self.reads = 0

    def open(self) -> None:
        pass

    def read(self) -> Captured:
        self.reads += 1
        return Captured(np.full((1, 1, 3), self.reads - 1, np.uint8))

    def close(self) -> None:
        pass


def test_a_paced_camera_gives_a_late_reader_the_newest_frame_stamped_at_its_exposure():
    camera = PacedCamera(Numbered(), fps=50)
    first = camera.read()
    assert int(first.image[0, 0, 0]) == 0 and first.t_capture is not None
    time.sleep(0.2)  # ten exposures at least
    late = camera.read()
    newest = int(late.image[0, 0, 0])
    assert newest >= 10 and camera.skipped == newest - 1
    assert late.t_capture is not None and late.t_capture <= time.monotonic()
    assert late.t_capture == pytest.approx(first.t_capture + newest / 50)


def test_ratios_compare_with_limit_and_the_loop_at_the_same_thread_count():
    def run(mode, outputs, fps, cpu):
        return {"mode": mode, "outputs": outputs, "threads": 2, "fps": fps, "cpu_ms_per_frame": cpu,
                "cpu_ms_per_captured_frame": cpu,
                "inference_ms": {"p50": 1, "p95": 1}, "peak_rss_mb": 1, "first_result_s": 1, "drops": {},
                "exposure_to_result_ms": {"p50": 1, "p95": 1, "p99": 1}}

    rows = {(r["mode"], r["outputs"]): r for r in summarise([
        run("limit", False, 100, 20), run("loop", False, 80, 26), run("pipeline", False, 90, 22),
        run("pipeline", False, 94, 23)])}
    pipeline = rows["pipeline", False]
    assert pipeline["fps"] == 92 and pipeline["fps_vs_limit"] == pytest.approx(0.92)
    assert pipeline["fps_vs_loop"] == pytest.approx(92 / 80)
    assert pipeline["beyond_invoke_ms"] == pytest.approx(2.5)  # median CPU 22.5 less limit's 20
    assert pipeline["beyond_vs_loop"] == pytest.approx(2.5 / 6)


def test_the_decoders_share_of_invoke_is_the_median_of_each_runs_own_ratio():
    """Each run's postprocess p50 over its own inference p50 (a slow run slows both), then the median of those."""
    def run(inference, postprocess, mask=None):
        return {"mode": "pipeline", "outputs": False, "threads": 1, "fps": 10, "cpu_ms_per_frame": 1,
                "cpu_ms_per_captured_frame": 1, "inference_ms": {"p50": inference, "p95": inference},
                "postprocess_ms": {"p50": postprocess, "p95": postprocess},
                **({"mask_ms": {"p50": mask, "p95": mask}} if mask else {}), "peak_rss_mb": 1,
                "first_result_s": 1, "drops": {}, "exposure_to_result_ms": {"p50": 1, "p95": 1, "p99": 1}}

    (row,) = summarise([run(100, 5, 2), run(200, 8, 4), run(100, 2, 3)])
    assert row["postprocess_vs_inference"] == pytest.approx(0.04)  # of 0.05, 0.04 and 0.02
    assert row["postprocess_ms_p50"] == 5 and row["mask_ms_p50"] == 3 and row["overlay_ms_p50"] is None
    undecoded = {key: value for key, value in run(100, 5).items() if key != "postprocess_ms"}
    (limit,) = summarise([{**undecoded, "mode": "limit"}])
    assert limit["postprocess_ms_p50"] is None and limit["postprocess_vs_inference"] is None
