"""Several cameras in one process (`cameras:`, app/cameras.py): the config, two clips as two cameras through
`python -m app` with one model and with two, per-camera stats and results, and the shared inference lane that
cameras using one model on one Edge TPU get, run here with the real pet SSD on the CPU standing in for the TPU
(there is no Edge TPU on this machine: the delegate is the hardware boundary)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from app.inference_lane import InferenceLane
from app.model.accelerator import ModelChoice, load_choice
from app.model.runner import ModelRunner
from app.cameras import Cameras, lane_groups
from app.config import Settings, load_cameras
from app.errors import ConfigError
from app.frame import Frame
from app.pipeline import Pipeline
from app.outputs.base import Publisher
from app.outputs.robot.base import RobotOutput
from conftest import (IMAGES, MODELS, PET_MODEL, PROJECT, TWO_PETS_FRAMES, Collector, app, error_line, pet_pipeline,
                      subscribed, wait_for)


def write_config(tmp_path: Path, cameras: list[dict], **device) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump({"cameras": cameras, **device}))
    return path


def test_each_camera_runs_its_pipeline_with_an_identity_of_its_own(tmp_path: Path) -> None:
    pets = pet_pipeline(tmp_path)
    config = write_config(tmp_path, [
        {"name": "front", "source": "pattern", "pipeline": str(pets), "zones": {"door": {"polygon": [[0, 0], [1, 0],
                                                                                                    [1, 1]]}}},
        {"name": "back", "source": "pattern", "pipeline": "classify", "accelerator": "cpu"}],
        http={"port": 8090}, mqtt={"client_id": "yard"}, accelerator="auto")
    front, back = load_cameras("detect", config)
    assert (front.device.camera.name, front.pipeline.name, front.device.accelerator) == ("front", "pets", "auto")
    assert (back.device.camera.name, back.pipeline.name, back.device.accelerator) == ("back", "classify", "cpu")
    assert list(front.device.camera.zones) == ["door"] and not front.device.cameras
    assert (front.device.http.port, back.device.http.port) == (8824, 8513)  # from their names (app/config/cameras.py)
    assert (front.device.mqtt.client_id, back.device.mqtt.client_id) == ("yard-front", "yard-back")


@pytest.mark.parametrize(("document", "message"), [
    ({"camera": {"name": "a"}, "cameras": [{"name": "b"}]}, r"cameras\.yaml: give camera: \(one camera\) or cameras:"),
    ({"cameras": [{"name": "a"}, {"name": "a"}]}, r"cameras\.yaml: cameras: every camera needs its own name \(a is"),
    ({"cameras": [{"name": "a", "pipeline": "detcet"}]}, r"cameras\.yaml: cameras\[0\]\.pipeline: .*did you mean "
                                                          r"detect\?"),
    ({"cameras": [{"name": "a", "sorce": "x"}]}, r"cameras\.yaml: cameras\.0\.sorce: unknown key \(did you mean "),
])
def test_a_wrong_cameras_list_is_one_line_naming_the_file_and_key(tmp_path: Path, document: dict,
                                                                  message: str) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=message):
        load_cameras("detect", path)


def _results_by_camera(lines: Path) -> Counter[str]:
    return Counter(json.loads(line)["source"] for line in lines.read_text().splitlines())


@pytest.mark.parametrize("models", ["one", "two"])
def test_two_clips_as_two_cameras_in_one_process(tmp_path: Path, two_pets_clip: Path, cat_clip: Path,
                                                 models: str) -> None:
    pets = pet_pipeline(tmp_path)
    classify = {"pipeline": "classify"} if models == "two" else {"pipeline": str(pets)}
    config = write_config(tmp_path, [{"name": "left", "source": str(two_pets_clip), "pipeline": str(pets)},
                                     {"name": "right", "source": str(cat_clip), **classify}],
                          jsonl={"enabled": True, "path": str(tmp_path / "results.jsonl")},
                          models={"dir": str(MODELS)})
    proc = app("--config", config, "--set", "stages.inference.threads=auto")
    assert proc.returncode == 0, proc.stderr
    counts = _results_by_camera(tmp_path / "results.jsonl")
    assert counts == {"left": TWO_PETS_FRAMES, "right": 90}
    assert all(n >= 0.4 * sum(counts.values()) for n in counts.values())
    summaries = [line for line in proc.stderr.splitlines() if line.startswith("smartcam: ")]
    assert [line.split(":")[1].strip() for line in summaries] == ["left", "right"]
    assert all(f"processed {n}," in line for line, n in zip(summaries, (TWO_PETS_FRAMES, 90), strict=True))
    assert proc.stderr.count("threads auto: 1 (2 cores for 2 cameras, each 1 core, outputs on)") == 2


def test_cameras_on_one_edge_tpu_model_share_a_lane_and_others_do_not(tmp_path: Path) -> None:
    tpu = ModelChoice(tmp_path / "ssd_edgetpu.tflite", "edgetpu", "as configured")
    other = ModelChoice(tmp_path / "classifier_edgetpu.tflite", "edgetpu", "as configured")
    cpu = ModelChoice(tmp_path / "ssd.tflite", "cpu", "as configured")
    assert lane_groups([tpu, cpu, tpu, other, cpu]) == [[0, 2], [1], [3], [4]]


def test_a_shared_lane_serves_each_camera_its_newest_frame_in_turn(tmp_path: Path) -> None:
    """Two live cameras far faster than the model share one interpreter and one lane: each gets about half."""
    pets = pet_pipeline(tmp_path)
    config = write_config(tmp_path, [{"name": name, "source": "pattern", "fps": 1000, "pipeline": str(pets)}
                                     for name in ("left", "right")])
    runs = load_cameras("detect", config, ["stages.inference.threads=1"])
    lane = InferenceLane(ModelRunner.load(runs[0], 1))
    collectors = [Collector(), Collector()]
    pipelines = [Pipeline(settings, [collector], lane=lane)
                 for settings, collector in zip(runs, collectors, strict=True)]
    assert pipelines[0].model is pipelines[1].model
    threads = [threading.Thread(target=pipeline.run) for pipeline in pipelines]
    for thread in threads:
        thread.start()
    wait_for(lambda: sum(len(c.results) for c in collectors) >= 100, "100 results from the shared lane", 60)
    for pipeline in pipelines:
        pipeline.stop()
    for thread in threads:
        thread.join(10)
    wait_for(lambda: lane.ended, "the lane's end once no camera is left on it", 10)
    processed = [pipeline.stats.processed for pipeline in pipelines]
    assert all(n >= 0.4 * sum(processed) for n in processed), processed
    assert all(pipeline.stats.drop_counts().get("stale", 0) > 0 for pipeline in pipelines)  # newest frame wins
    assert [{r["source"] for r in c.results} for c in collectors] == [{"left"}, {"right"}]
    assert lane.ended


def test_the_service_is_alive_only_while_every_camera_is() -> None:
    from app.metrics import Stats
    from app.service import ServiceMonitor

    left, right = Stats(), Stats()
    left.info["camera"], right.info["camera"] = "left", "right"
    monitor = ServiceMonitor(left, right, stall_after_s=5)
    left.observe({"inference": 10.0})
    now = left.last_result or 0.0
    assert not monitor.alive(now) and monitor.status(now).startswith("left: running") and \
        "right: starting" in monitor.status(now)
    right.observe({"inference": 12.0})
    assert monitor.alive(now + 1) and monitor.frames_flowing(now + 1)
    left.last_result = now - 10  # left's camera hangs: the watchdog must starve, whatever right does
    assert not monitor.alive(now + 1) and "left: stalled" in monitor.status(now + 1)


def test_each_camera_has_its_own_topics_and_home_assistant_device(tmp_path: Path, broker, two_pets_clip: Path,
                                                                  cat_clip: Path) -> None:
    pets = pet_pipeline(tmp_path)
    config = write_config(tmp_path, [{"name": "left", "source": str(two_pets_clip), "pipeline": str(pets)},
                                     {"name": "right", "source": str(cat_clip), "pipeline": str(pets)}],
                          mqtt={"enabled": True, "host": "127.0.0.1", "port": broker.port, "publish_results": True})
    with subscribed(broker.port) as subscriber:
        proc = app("--config", config, "--max-frames", "10")
        assert proc.returncode == 0, proc.stderr
        wait_for(lambda: all(len(subscriber.payloads(f"smartcam/{name}/pets/results")) == 10
                             for name in ("left", "right")), "10 results of each camera")
    devices = [json.loads(subscriber.payloads(topic)[0])["device"] for topic in subscriber.discovery()]
    assert len({device["identifiers"][0] for device in devices}) == 2
    assert {json.loads(p)["source"] for p in subscriber.payloads("smartcam/left/pets/results")} == {"left"}


def test_cameras_whose_edge_tpu_does_not_answer_each_get_a_cpu_lane(tmp_path: Path,
                                                                     edgetpu_runtime_without_device: Path) -> None:
    """`auto` chooses the Edge TPU twin of the classifier for both (a runtime loads), the TPU does not answer: both
    cameras run the CPU model, each on its own lane with its share of the cores, none on a shared lane."""
    model = MODELS / "mobilenet_v1_0.5_160_quant.tflite"
    config = write_config(tmp_path, [{"name": name, "source": str(IMAGES / "cat.bmp"), "pipeline": "classify"}
                                     for name in ("left", "right")],
                          jsonl={"enabled": True, "path": str(tmp_path / "results.jsonl")})
    proc = app("--config", config, "--model", model, "--labels", MODELS / "imagenet_labels.txt",
               library_dir=edgetpu_runtime_without_device)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("accelerator cpu: mobilenet_v1_0.5_160_quant.tflite on the CPU: accelerator edgetpu: "
                             "no Edge TPU answered") == 2
    assert proc.stderr.count("threads auto: 1 (2 cores for 2 cameras") == 2 and "one inference lane" not in proc.stderr
    assert _results_by_camera(tmp_path / "results.jsonl") == {"left": 1, "right": 1}


@pytest.mark.parametrize("flag", [["--source", "pattern"], ["--set", "camera.fps=5"]])
def test_camera_keys_from_the_command_line_are_refused_with_cameras_listed(tmp_path: Path, flag: list[str]) -> None:
    config = write_config(tmp_path, [{"name": "left", "source": "pattern"}, {"name": "right", "source": "pattern"}])
    line = error_line(app("--config", config, *flag), 2)
    assert line.startswith("error: --set: camera.") and "cameras.yaml lists cameras:, each with its own keys: set " \
        "them in the file (--source, too, names one camera's source)" in line


# --- a camera's failure is its own ---------------------------------------------------------------------------------


def _boom() -> None:
    raise RuntimeError("the output broke")


class Outputs:
    """The publishers factory of a Cameras: `camera`'s first publisher raises at its `at`-th frame; every later
    build of it, and every other camera, gets a Collector that keeps what reaches it, by camera, build by build."""

    def __init__(self, camera: str, at: int) -> None:
        self.camera, self.at = camera, at
        self.built: dict[str, list[Collector]] = {}
        self.failed_at: float | None = None

    def __call__(self, settings: Settings) -> list[Publisher]:
        name = settings.device.camera.name
        first = name == self.camera and name not in self.built
        collector = Collector(at={self.at: self._fail}) if first else Collector()
        self.built.setdefault(name, []).append(collector)
        return [collector]

    def _fail(self) -> None:
        self.failed_at = time.monotonic()
        _boom()


def _run_until(cameras: Cameras, done: Callable[[], bool], what: str) -> None:
    """Run `cameras` in the background until `done()`, then stop them: the run must end, and without an error."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            cameras.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(done, what, 60)
    finally:
        cameras.stop()
        thread.join(10)
    assert not thread.is_alive() and errors == []


def _two_live_cameras(tmp_path: Path) -> list[Settings]:
    pets = pet_pipeline(tmp_path)
    config = write_config(tmp_path, [{"name": name, "source": "pattern", "fps": 15, "pipeline": str(pets)}
                                     for name in ("left", "right")])
    return load_cameras("detect", config, ["stages.inference.threads=1"])


def test_a_live_camera_that_fails_is_rebuilt_while_the_other_runs_on(tmp_path: Path, monkeypatch,
                                                                      caplog) -> None:
    monkeypatch.setattr("app.cameras.RESTART_FIRST_S", 0.5)
    outputs = Outputs("left", at=5)
    cameras = Cameras(_two_live_cameras(tmp_path), outputs)
    left, right = cameras.stats
    _run_until(cameras, lambda: len(outputs.built["left"]) == 2 and outputs.built["left"][1].count >= 5,
               "left rebuilt and delivering again")
    assert (left.state, left.failures, left.last_failure) == ("ended", 1, "the output broke")
    assert left.restarted is not None and outputs.failed_at is not None
    during = [t for t in outputs.built["right"][0].times if outputs.failed_at < t < left.restarted]
    assert during, "right delivered nothing while left was down"
    assert (right.state, right.failures, len(outputs.built["right"])) == ("ended", 0, 1)
    assert left.processed >= 5 + outputs.built["left"][1].count  # one Stats for both runs: its counts go on
    assert left.document()["failures"] == 1
    assert caplog.text.count("camera left failed: the output broke; rebuilt in 0.5 s") == 1


def test_a_stop_while_a_failed_camera_waits_to_be_rebuilt_ends_the_run_cleanly(tmp_path: Path, monkeypatch) -> None:
    """`systemctl stop` during the backoff: the run was asked to end, and it ends without a failure (exit 0)."""
    monkeypatch.setattr("app.cameras.RESTART_FIRST_S", 60.0)
    outputs = Outputs("left", at=5)
    cameras = Cameras(_two_live_cameras(tmp_path), outputs)
    left, right = cameras.stats
    _run_until(cameras, lambda: left.state == "restarting", "left waiting to be rebuilt")
    assert (left.state, left.failures, right.state) == ("ended", 1, "ended")


def test_a_camera_on_a_shared_lane_that_fails_rejoins_it(tmp_path: Path, monkeypatch) -> None:
    """Two cameras on one (stand-in) Edge TPU model share a lane; the one whose output fails is rebuilt onto the same
    lane and interpreter, while its neighbour is served throughout."""
    tpu = ModelChoice(PET_MODEL, "edgetpu", "stand-in: the pet SSD on the CPU")
    monkeypatch.setattr("app.cameras.choose_model", lambda settings: tpu)
    monkeypatch.setattr("app.model.runner.load_choice", lambda choice, threads: (load_choice(
        ModelChoice(PET_MODEL, "cpu", "stand-in"), threads)[0], tpu))
    monkeypatch.setattr("app.cameras.RESTART_FIRST_S", 0.5)
    outputs = Outputs("left", at=5)
    cameras = Cameras(_two_live_cameras(tmp_path), outputs)
    assert len(cameras.lanes) == 1
    model = cameras.running[0].model
    left, right = cameras.stats
    _run_until(cameras, lambda: len(outputs.built["left"]) == 2 and outputs.built["left"][1].count >= 5,
               "left rebuilt and delivering again")
    assert len(cameras.lanes) == 1 and cameras.running[0].model is model  # the same lane and interpreter
    assert cameras.running[0].lane is cameras.running[1].lane
    assert left.restarted is not None and outputs.failed_at is not None
    assert [t for t in outputs.built["right"][0].times if outputs.failed_at < t < left.restarted]
    assert (left.failures, right.failures) == (1, 0)


class BrokenRobotOutput(RobotOutput):
    """A robot output that raises: a failure inside the (shared) inference lane, for one camera only."""

    def send(self, frame: Frame) -> None:
        raise RuntimeError("the robot output broke")


def test_a_shared_lane_fails_only_the_camera_whose_frame_raised(tmp_path: Path) -> None:
    runs = _two_live_cameras(tmp_path)
    lane = InferenceLane(ModelRunner.load(runs[0], 1))
    collectors = [Collector(), Collector()]
    pipelines = [Pipeline(runs[0], [collectors[0]], lane=lane, robot_outputs=[BrokenRobotOutput()]),
                 Pipeline(runs[1], [collectors[1]], lane=lane)]
    runs_done: list[BaseException | None] = [None, None]

    def run(n: int) -> None:
        try:
            pipelines[n].run()
        except BaseException as exc:
            runs_done[n] = exc

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in (0, 1)]
    for thread in threads:
        thread.start()
    threads[0].join(30)
    assert isinstance(runs_done[0], RuntimeError) and "robot output broke" in str(runs_done[0])
    served = collectors[1].count
    wait_for(lambda: collectors[1].count >= served + 10, "the other camera served on", 30)
    assert not lane.ended
    pipelines[1].stop()
    threads[1].join(10)
    wait_for(lambda: lane.ended, "the lane's end once no camera is left on it", 10)
    assert runs_done[1] is None and lane.ended and not lane.join(pipelines[1])


def test_a_camera_that_fails_for_good_is_named_while_the_other_delivers_all_its_results(
        tmp_path: Path, two_pets_clip: Path) -> None:
    """A folder of images shown round and round (`loop`) is deleted while the run goes: that camera fails (its
    source gives up) and stays failed (it reads files); the clip camera delivers every frame; exit 1."""
    pets = pet_pipeline(tmp_path)
    folder = tmp_path / "shots"
    folder.mkdir()
    for n in range(3):
        shutil.copy(IMAGES / "cat.bmp", folder / f"cat{n}.bmp")
    results = tmp_path / "results.jsonl"
    config = write_config(tmp_path, [{"name": "clip", "source": str(two_pets_clip), "pipeline": str(pets)},
                                     {"name": "shots", "source": str(folder), "loop": True, "pipeline": str(pets)}],
                          jsonl={"enabled": True, "path": str(results)})
    proc = subprocess.Popen([sys.executable, "-m", "app", "--config", str(config), "--set",
                             "stages.inference.threads=1"], cwd=PROJECT, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: results.exists() and _results_by_camera(results)["shots"] >= 3, "a round of the shots", 60)
        shutil.rmtree(folder)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr
    assert _results_by_camera(results)["clip"] == TWO_PETS_FRAMES
    summaries = [line for line in stderr.splitlines() if line.startswith("smartcam: ")]
    assert summaries[0].startswith("smartcam: clip: captured") and f"processed {TWO_PETS_FRAMES}," in summaries[0]
    assert summaries[1].startswith(f"smartcam: shots: failed: none of the images at {folder} could be read; ")
    assert f"error: camera shots failed: none of the images at {folder} could be read" in stderr.splitlines()
    assert "Traceback" not in stderr
