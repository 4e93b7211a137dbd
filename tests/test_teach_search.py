"""Look-alikes: each track's last embedding kept by the crop stage when it ends, bounded on disk beside the gallery,
and `python -m app search IMAGE` ranking them by cosine, with the real models (YOLOv8n, MobileNet v2 cut at its
pooled features). Also the store's bound, a line cut short by a crash, and a file that is not a store."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.scene.tracker import END, ObjectEvent
from app.teach.gallery import Embedder
from app.teach.recent import RecentTracks, read_recent
from conftest import IMAGES, app, imread
from teach_helpers import Run, ended, embedder_fixture, pipeline_fixture, teach  # noqa: F401 (fixtures)

def test_search_finds_grace_s_track_from_another_crop_of_her_above_the_cat_and_the_kite_s_people(tmp_path,
                                                                                                pipeline):
    """grace taught; a camera sees grace_hopper.bmp, then cat_720p.jpg, then kite_and_cold.jpg, each track ending.
    A crop of her photo never seen (its lower right 85%, mirrored) finds her track first, named grace, by a clear
    margin over the cat and the kite's people; so does the whole crop, without a label. A store that is not one is one
    line and the others are searched; with none, one line says so."""
    gallery = tmp_path / "teach" / "gallery.json"
    gallery.parent.mkdir()
    teach(gallery, pipeline, "grace", IMAGES / "grace_hopper.bmp", "--label", "person")
    run = Run(pipeline, gallery)
    (her,) = [track for track in ended(run, [imread(IMAGES / "grace_hopper.bmp")] * 6) if track[0] == "person"]
    others = [track for images in ("cat_720p.jpg", "kite_and_cold.jpg")
              for track in ended(run, [imread(IMAGES / images)] * 6) if track[0] in ("cat", "person")]
    assert ("cat", others[0][1]) in others and sum(label == "person" for label, _ in others) >= 3
    photo = imread(IMAGES / "grace_hopper.bmp")
    height, width = photo.shape[:2]
    crop = tmp_path / "another_grace.png"
    cv2.imwrite(str(crop), cv2.flip(photo[height * 15 // 100:, width * 15 // 100:], 1))
    nothing = app("search", crop, "--label", "person", "--pipeline", pipeline, "--gallery", tmp_path / "g.json")
    assert nothing.returncode == 0 and nothing.stdout.startswith(f"no recent tracks in {tmp_path}")
    (gallery.parent / "recent-cam1-detect.jsonl").write_text("not a store\n")
    proc = app("search", crop, "--label", "person", "--top", "3", "--pipeline", pipeline, "--gallery", gallery)
    assert proc.returncode == 0, proc.stderr
    (skipped,) = [line for line in proc.stderr.splitlines() if "recent-cam1-detect.jsonl" in line]
    assert "not a store of recent tracks" in skipped and "not searched" in skipped
    lines = [line.split("\t") for line in proc.stdout.splitlines()]
    print(proc.stdout)
    assert len(lines) == 3
    assert lines[0][2] == f"person #{her[1]}" and lines[0][4] == "grace"
    assert float(lines[0][0]) > float(lines[1][0]) + 0.1
    assert {f"{label} #{track_id}" for label, track_id in others} >= {line[2] for line in lines[1:]}
    whole = app("search", crop, "--top", "1", "--pipeline", pipeline, "--gallery", gallery)  # the whole image
    assert whole.returncode == 0 and whole.stdout.split("\t")[2:5:2] == [f"person #{her[1]}", "grace\n"]


def a_vector(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=16).astype(np.float32)
    return vector / np.linalg.norm(vector)


def an_end(track_id: int) -> ObjectEvent:
    return ObjectEvent(type=END, track_id=track_id, label="person", score=0.9, box=(0.0, 0.0, 1.0, 1.0), zones=(),
                       start=0.0, end=1.0, stationary=False, changes=(), seq=track_id)


@pytest.fixture
def model(tmp_path) -> Path:
    path = tmp_path / "e.tflite"
    path.write_bytes(b"an embedder's bytes")
    return path


def test_the_store_keeps_the_newest_tracks_and_its_file_stays_bounded(tmp_path, model):
    """keep 3: after each of 20 tracks the file holds at most 2 x 3 of them (and its header line), and reads back
    as the newest ones, in order, their vectors within float16's rounding."""
    store = RecentTracks(tmp_path / "recent-cam0-detect.jsonl", model, "cam0", "detect", keep=3)
    for track_id in range(20):
        store.ended(an_end(track_id), a_vector(track_id), "grace" if track_id % 2 else None, 100.0 + track_id)
        assert len(store.path.read_bytes().splitlines()) <= 1 + 2 * 3
        read = read_recent(store.path, Embedder.of(model))
        assert read[-1].track_id == track_id and len(read) >= min(track_id + 1, 3)
    assert [t.track_id for t in read_recent(store.path, Embedder.of(model))][-3:] == [17, 18, 19]
    last = read_recent(store.path, Embedder.of(model))[-1]
    assert (last.camera, last.pipeline, last.label, last.name, last.ts) == ("cam0", "detect", "person", "grace", 119.0)
    assert np.allclose(last.vector, a_vector(19), atol=1e-3)


def test_a_line_cut_short_is_not_read_and_a_file_that_is_not_a_store_is_one_line_then_empty(tmp_path, model,
                                                                                            caplog):
    path = tmp_path / "recent-cam0-detect.jsonl"
    store = RecentTracks(path, model, "cam0", "detect")
    store.ended(an_end(1), a_vector(1), None, 1.0)
    with path.open("a") as cut_short:  # a crash mid-append
        cut_short.write('{"camera": "cam0", "pipel')
    assert [t.track_id for t in read_recent(path, Embedder.of(model))] == [1]
    RecentTracks(path, model, "cam0", "detect").ended(an_end(2), a_vector(2), None, 2.0)
    assert [t.track_id for t in read_recent(path, Embedder.of(model))] == [1, 2]

    path.write_bytes(b"\x00\x01 not a store\n{}\n")
    with caplog.at_level(logging.WARNING, logger="app.teach.recent"):
        RecentTracks(path, model, "cam0", "detect").ended(an_end(3), a_vector(3), None, 3.0)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "app.teach.recent"]
    assert str(path) in line and "not a store of recent tracks" in line and "starting it empty" in line
    assert [t.track_id for t in read_recent(path, Embedder.of(model))] == [3]
