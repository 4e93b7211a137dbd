"""Reload (app/reload.py): a SIGHUP to a real run applies a new zone and score threshold live, keeping the source,
the MQTT connection, the page's socket, the track ids and the process; a broken file is refused with one line and
the run goes on; what cannot change live restarts only its camera; `python -m app reload` finds the runs of a
configuration."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import pytest
import yaml

from app.cameras import Cameras
from app.config import load_cameras
from app.errors import ConfigError
from app.outputs import build_publishers
from app.reload import MODEL_CHANGED, Reloader, restart_reason, running_runs
from conftest import (CAT_BREEDS, PET, PET_MODEL, PROJECT, Collector, app, error_line, pet_pipeline, subscribed,
                      wait_for)

EVERYWHERE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def still_clip(two_pets_clip: Path, directory: Path) -> Path:
    """Two seconds at 10 fps of the two-pets clip's first frame: the cat (the pet SSD scores it about 0.68) and the
    dog (about 0.4) in the same place in every frame, so their tracks live as long as the run."""
    capture = cv2.VideoCapture(str(two_pets_clip))
    ok, frame = capture.read()
    capture.release()
    assert ok
    path = directory / "still.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (frame.shape[1], frame.shape[0]))
    for _ in range(20):
        writer.write(frame)
    writer.release()
    return path


def write_config(path: Path, clip: Path, zone: str, results: Path, mqtt_port: int) -> None:
    path.write_text(yaml.safe_dump({
        "camera": {"name": "porch", "source": str(clip), "loop": True, "realtime": True,
                   "zones": {zone: {"polygon": EVERYWHERE, "inertia": 1}}},
        "jsonl": {"enabled": True, "path": str(results)}, "http": {"enabled": True, "port": 0},
        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": mqtt_port, "stats_interval_s": 0.5}}))


def results_since(path: Path, skip: int) -> list[dict]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines[skip:]]


def cats(results: list[dict], zone: str) -> list[int]:
    """The track ids of the cats in `zone`, in the order of the results."""
    return [d["track_id"] for r in results for d in r["detections"]
            if d["label"] in CAT_BREEDS and d.get("track_id") and zone in d.get("zones", [])]


def test_a_sighup_applies_a_new_zone_and_threshold_live_and_a_broken_file_is_refused(tmp_path, broker,
                                                                                       two_pets_clip):
    clip, results, config = still_clip(two_pets_clip, tmp_path), tmp_path / "results.jsonl", tmp_path / "config.yaml"
    pets = pet_pipeline(tmp_path, "pets", postprocess={"min_score": 0.5}, track={"min_hits": 1})
    write_config(config, clip, "porch_before", results, broker.port)
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "app", "--config", str(config), "--pipeline", str(pets),
                                 "--set", "stages.inference.threads=1"], cwd=PROJECT, stderr=stderr, text=True)
    try:
        before = wait_for(lambda: cats(results_since(results, 0), "porch_before"), "the cat in the first zone", 60)
        assert not any(d["score"] < 0.5 for r in results_since(results, 0) for d in r["detections"])
        # the zone renamed (in config.yaml) and the threshold lowered (in the pipeline file), then SIGHUP
        write_config(config, clip, "porch_after", results, broker.port)
        pets = pet_pipeline(tmp_path, "pets", postprocess={"min_score": 0.3}, track={"min_hits": 1})
        seen = len(results.read_text().splitlines())
        with subscribed(broker.port, "smartcam/porch/pets/objects") as objects:
            proc.send_signal(signal.SIGHUP)
            after = wait_for(lambda: cats(results_since(results, seen), "porch_after"), "the cat in the new zone", 30)
            wait_for(lambda: any(d["score"] < 0.5 for r in results_since(results, seen) for d in r["detections"]),
                     "a detection under the old threshold (the dog)", 30)
            news = wait_for(lambda: [e for e in map(json.loads, objects.payloads("smartcam/porch/pets/objects"))
                                     if e["type"] == "new"], "the dog's track, new", 30)
        assert after[0] == before[-1]  # the same track: the tracker and its ids went on
        assert [e["label"] for e in news if e["label"] in CAT_BREEDS] == []  # the cat was not tracked anew
        # a file that does not validate: refused, and the run goes on as it was
        config.write_text(config.read_text().replace("zones:", "zonse:"))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in log.read_text(), "the refusal in the log", 30)
        seen = len(results.read_text().splitlines())
        wait_for(lambda: cats(results_since(results, seen), "porch_after"), "results on the old config", 30)
        assert proc.poll() is None
        with subscribed(broker.port, "smartcam/porch/pets/stats") as stats:
            document = json.loads(wait_for(lambda: stats.payloads("smartcam/porch/pets/stats"), "the stats", 30)[0])
        assert document["reload"]["ok"] is False and "zonse" in document["reload"]["error"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0
    lines = log.read_text().splitlines()
    assert len([line for line in lines if " opened (" in line]) == 1, lines  # the source opened once
    assert len([line for line in lines if "http: listening on" in line]) == 1, lines  # the page's socket kept
    refusals = [line for line in lines if "reload refused" in line]
    assert len(refusals) == 1 and "zonse" in refusals[0] and "ERROR" in refusals[0]
    assert len([line for line in lines if "reloaded: camera porch changed live" in line]) == 1
    connections = [line for line in broker.log.read_text().splitlines()
                   if "New client connected" in line and " as smartcam-" in line]
    assert len(connections) == 1, connections


def test_what_a_running_camera_cannot_take_live_is_named():
    runs = load_cameras("detect", None, [])
    old = runs[0]

    def changed(*overrides: str):
        return restart_reason(old, load_cameras("detect", None, list(overrides))[0])

    assert changed() is None
    assert changed("camera.zones={door: {polygon: [[0, 0], [1, 0], [1, 1]]}}") is None
    assert changed("stages.postprocess.min_score=0.2", "camera.detect_fps=2", "mqtt.enabled=true",
                   "publish.labels=[cat]", "overlay.banner=false") is None
    assert changed("camera.source=pattern") == "its source or capture settings changed"
    assert changed(f"stages.inference.model={PET_MODEL}") == MODEL_CHANGED
    assert changed("stages.preprocess.resize=letterbox") == MODEL_CHANGED
    assert changed("udp.enabled=true") == "its robot outputs changed"


def test_a_reload_that_cannot_be_loaded_is_refused_in_one_line_and_reported(caplog):
    applied: list[object] = []

    def broken() -> list:
        raise ConfigError(["config.yaml: camera.zonse: unknown key; did you mean zones?"])

    def apply(runs: list) -> str:
        applied.append(runs)
        return "applied"

    reloader = Reloader(broken, apply)
    with caplog.at_level(logging.INFO, logger="app.reload"):
        reloader.reload()
    assert applied == []
    assert [r.getMessage() for r in caplog.records] == [
        "reload refused, running on as before: config.yaml: camera.zonse: unknown key; did you mean zones?"]
    document = reloader.document()
    assert document["ok"] is False and document["count"] == 1 and "camera.zonse" in str(document["error"])


def two_cameras(tmp_path: Path, left_source: str = "pattern") -> list:
    config = tmp_path / "cameras.yaml"
    config.write_text(yaml.safe_dump({"cameras": [{"name": "left", "source": left_source, "fps": 20, "loop": True},
                                                  {"name": "right", "source": "pattern", "fps": 20}]}))
    return load_cameras("detect", config, [*PET, "stages.inference.threads=1"])


def test_a_camera_whose_source_changed_restarts_alone(tmp_path, caplog, two_pets_clip):
    collectors: dict[str, list[Collector]] = {"left": [], "right": []}

    def outputs(settings) -> list:
        collectors[settings.device.camera.name].append(Collector())
        return [collectors[settings.device.camera.name][-1]]

    cameras = Cameras(two_cameras(tmp_path), outputs)
    running = threading.Thread(target=cameras.run)
    with caplog.at_level(logging.INFO):
        running.start()
        try:
            wait_for(lambda: all(c[0].count >= 3 for c in collectors.values()), "both cameras delivering", 60)
            right = cameras.pipelines[1]
            done = cameras.reload(two_cameras(tmp_path, str(two_pets_clip)))
            assert done == "camera left restarts (its source or capture settings changed); camera right changed live"
            wait_for(lambda: len(collectors["left"]) == 2 and collectors["left"][1].count >= 3, "left restarted", 60)
        finally:
            cameras.stop()
            running.join(30)
    opened = [r.getMessage() for r in caplog.records if " opened (" in r.getMessage()]
    assert [line.split(":")[0] for line in opened] == ["left", "right", "left"]
    assert str(two_pets_clip) in opened[-1]
    assert cameras.pipelines[1] is right  # never rebuilt, and its outputs kept (not those built for the reload)
    assert right is not None and right.outputs.publishers == collectors["right"][:1]
    assert [stats.failures for stats in cameras.stats] == [0, 0]


def test_cameras_added_or_removed_are_refused(tmp_path):
    cameras = Cameras(two_cameras(tmp_path), lambda settings: [])
    with pytest.raises(ConfigError, match=r"the cameras changed \(left added or removed\): restart smartcam"):
        cameras.reload(two_cameras(tmp_path)[1:])


def test_outputs_turned_on_by_a_reload_start_and_those_turned_off_stop(tmp_path, two_pets_clip):
    results = tmp_path / "results.jsonl"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"camera": {"source": str(two_pets_clip), "loop": True, "realtime": True}}))
    runs = load_cameras("detect", config, [*PET, "stages.inference.threads=1"])
    collector = Collector()
    cameras = Cameras(runs, lambda settings: [*build_publishers(settings), collector])
    running = threading.Thread(target=cameras.run)
    running.start()
    try:
        wait_for(lambda: collector.count >= 3, "results", 60)
        cameras.reload(load_cameras("detect", config, [*PET, "stages.inference.threads=1", "jsonl.enabled=true",
                                                       f"jsonl.path={results}"]))
        wait_for(lambda: results.exists() and len(results.read_text().splitlines()) >= 3, "JSON lines", 30)
        cameras.reload(load_cameras("detect", config, [*PET, "stages.inference.threads=1"]))
        counted = collector.count
        wait_for(lambda: collector.count >= counted + 3, "results after the reload", 30)
        written = len(results.read_text().splitlines())
        wait_for(lambda: collector.count >= counted + 10, "more results", 30)
        assert len(results.read_text().splitlines()) == written
    finally:
        cameras.stop()
        running.join(30)
    assert collector in cameras.running[0].outputs.publishers  # not built from the files: kept throughout


def test_reload_finds_the_runs_of_one_configuration(tmp_path):
    proc = tmp_path / "proc"
    config, other = tmp_path / "config.yaml", tmp_path / "other.yaml"
    commands = ("run", "validate", "reload")
    for pid, argv, cwd in ((10, ["python3", "-m", "app", "--pipeline", "detect"], PROJECT),
                           (11, ["/opt/x/bin/python", "-m", "app", "run", "--config", "config.yaml"], tmp_path),
                           (12, ["/usr/bin/python3", "/opt/x/bin/smartcam", f"--config={config}"], Path("/")),
                           (13, ["python3", "-m", "app", "validate", "--config", str(config)], tmp_path),
                           (14, ["python3", "-m", "app", "--config", str(other)], tmp_path),
                           (15, ["bash"], tmp_path)):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(arg.encode() for arg in argv) + b"\0")
        (proc / str(pid) / "cwd").symlink_to(cwd)
    (proc / "self").mkdir()
    assert [pid for pid, _ in running_runs(commands, config, PROJECT / "config.yaml", proc)] == [11, 12]
    assert [pid for pid, _ in running_runs(commands, PROJECT / "config.yaml", PROJECT / "config.yaml", proc)] == [10]


def test_the_reload_command_refuses_broken_files_and_says_when_nothing_runs(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("camera: {nmae: x}\n")
    assert "camera.nmae" in error_line(app("reload", "--config", str(broken)), 2)
    quiet = tmp_path / "quiet.yaml"
    quiet.write_text("camera: {source: pattern}\n")
    assert error_line(app("reload", "--config", str(quiet)), 1) == (
        f"error: no smartcam run on {quiet} to reload on this machine (start one with python -m app run, or name "
        "its configuration with --config)")
