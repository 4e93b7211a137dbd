"""The MOT15 harness (app/bench/mot.py): det.txt read into frames, tracked into MOT result lines, detections dropped
the same way for the same seed, a folder without the sequences refused in one line. The scoring itself is
py-motmetrics' (a bench dependency), run by hand."""

from __future__ import annotations

from app.bench.mot import drop, main, read_detections, track
from app.config import TrackParams
from app.frame import Detection


def test_detections_are_read_and_tracked_into_result_lines(tmp_path):
    det = tmp_path / "det.txt"
    det.write_text("".join(f"{f},-1,{100 + 10 * f},50,40,100,0.9,-1,-1,-1\n" for f in range(1, 6))
                   + "5,-1,400,50,40,100,0.8,-1,-1,-1\n")
    frames = read_detections(det)
    assert sorted(frames) == [1, 2, 3, 4, 5] and frames[5][1].box == (400, 50, 440, 150)
    lines = track(frames, TrackParams(min_hits=3, smooth=False)).split()
    assert lines == [f"{f},1,{100 + 10 * f:.2f},50.00,40.00,100.00,1,-1,-1,-1" for f in (3, 4, 5)]


def test_drop_removes_the_same_detections_for_the_same_seed():
    frames = {f: [Detection("person", 0, 0.9, (i, 0, i + 10, 10)) for i in range(10)] for f in range(1, 101)}
    once, again, other = drop(frames, 0.3, 0), drop(frames, 0.3, 0), drop(frames, 0.3, 1)
    assert once == again and once != other
    assert 650 < sum(len(kept) for kept in once.values()) < 750


def test_a_folder_without_the_sequences_is_refused_in_one_line(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
