"""The Python API (`app.api`): a configured pipeline's results iterated in the caller's process, with the real
pet SSD on real clips; no outputs unless asked; stopped from another thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from app.api import open_pipeline
from app.errors import ConfigError
from app.frame import ARRIVAL
from conftest import CAT_BREEDS, TWO_PETS_FRAMES, TWO_PETS_SIZE, pet_pipeline


def test_every_frame_of_a_file_is_a_result_in_order_with_its_stamp(tmp_path: Path, two_pets_clip: Path) -> None:
    pipeline = pet_pipeline(tmp_path, postprocess={"min_score": 0.3}, track={})
    with open_pipeline(str(pipeline), source=str(two_pets_clip)) as results:
        got = list(results)
    assert [r.seq for r in got] == list(range(1, TWO_PETS_FRAMES + 1))
    assert all(r.camera == "cam0" and r.pipeline == "pets" and r.size == TWO_PETS_SIZE for r in got)
    assert all(r.stamp == ARRIVAL and r.image is None for r in got)
    stamps = [r.stamp_ns for r in got]
    assert stamps == sorted(stamps) and abs(got[0].ts - got[0].document["ts"]) < 1e-3
    last = got[-1]
    assert {d.label for d in last.detections} & CAT_BREEDS
    assert {d.track_id for d in last.detections if d.track_id is not None} == {1, 2}
    assert last.document["detections"] == [d.as_dict() for d in last.detections]
    assert last.timing_ms["exposure_to_result"] >= last.timing_ms["inference"] > 0
    assert results.stats.processed == TWO_PETS_FRAMES


def test_frames_are_handed_over_only_when_asked(tmp_path: Path, two_pets_clip: Path) -> None:
    pipeline = pet_pipeline(tmp_path)
    with open_pipeline(str(pipeline), source=str(two_pets_clip), frames=True) as results:
        first = next(iter(results))
    assert first.image is not None and first.image.shape == (TWO_PETS_SIZE[1], TWO_PETS_SIZE[0], 3)
    assert first.order == "bgr"


def test_stop_from_another_thread_ends_a_live_run(tmp_path: Path, two_pets_clip: Path) -> None:
    pipeline = pet_pipeline(tmp_path)
    results = open_pipeline(str(pipeline), source=str(two_pets_clip), overrides=["camera.realtime=true",
                                                                                  "camera.loop=true"])
    seen = 0
    for _ in results:
        seen += 1
        if seen == 5:
            threading.Thread(target=results.stop).start()
    assert results.pipeline.source.live and seen >= 5
    assert not results.running


def test_no_output_runs_unless_asked(tmp_path: Path, two_pets_clip: Path) -> None:
    pipeline = pet_pipeline(tmp_path)
    lines = tmp_path / "results.jsonl"
    jsonl = ["jsonl.enabled=true", f"jsonl.path={lines}", "camera.loop=false"]
    with open_pipeline(str(pipeline), source=str(two_pets_clip), overrides=jsonl) as quiet:
        assert len(list(quiet)) == TWO_PETS_FRAMES
    assert not lines.exists()
    with open_pipeline(str(pipeline), source=str(two_pets_clip), overrides=jsonl, outputs=True) as loud:
        assert len(list(loud)) == TWO_PETS_FRAMES
    assert len(lines.read_text().splitlines()) == TWO_PETS_FRAMES


def test_a_wrong_key_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--set: camera\.sorce: unknown key \(did you mean camera\.source\?\)"):
        open_pipeline(str(pet_pipeline(tmp_path)), overrides=["camera.sorce=pattern"])


def test_a_failure_of_the_run_is_raised_by_the_iteration(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"  # there, so not waited for as a file not there yet would be
    broken.write_bytes(b"not a video")
    with pytest.raises(Exception, match="broken.mp4"), open_pipeline(str(pet_pipeline(tmp_path)),
                                                                     source=str(broken)) as results:
        list(results)


def test_with_cameras_listed_one_is_opened_by_name(tmp_path: Path, two_pets_clip: Path) -> None:
    pets = pet_pipeline(tmp_path)
    config = tmp_path / "cameras.yaml"
    config.write_text(yaml.safe_dump({"cameras": [{"name": "left", "source": "pattern", "pipeline": str(pets)},
                                                  {"name": "right", "source": str(two_pets_clip),
                                                   "pipeline": str(pets)}]}))
    with pytest.raises(ConfigError, match=r"cameras\.yaml: open_pipeline\(camera=\.\.\.\) names one of its "
                                          r"cameras: left, right"):
        open_pipeline(config=config)
    with open_pipeline(config=config, camera="right") as results:
        got = list(results)
    assert len(got) == TWO_PETS_FRAMES and {r.camera for r in got} == {"right"}
