"""What the world may fix by itself is waited for inside the process: a network camera down at start, an HTTP
port still held, a disk not mounted yet. The process stays up, says why (/healthz, /api/stats, the log), and
carries on once it clears."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from app.config import load_settings
from app.errors import ConfigError
from app.metrics import Stats
from app.pipeline import Pipeline
from app.outputs import build_publishers
from app.outputs.base import PublishContext
from app.outputs.http import HttpPublisher
from app.outputs.snapshots import SnapshotPublisher
from conftest import (PET, PROJECT, Background, Collector, alternating_folder, cat_settings, free_port,
                      network_camera, wait_for)

DOWN_FOR_S = 30


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def test_a_network_camera_down_at_start_is_waited_for_and_picked_up_when_it_answers():
    camera_port, page_port = free_port(), free_port()
    viewer = subprocess.Popen(
        [sys.executable, "-m", "app", "--source", f"http://127.0.0.1:{camera_port}/stream.mjpg",
         *[arg for override in PET for arg in ("--set", override)],
         "--set", "http.enabled=true", "--set", f"http.port={page_port}"],
        cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        started = time.monotonic()
        while time.monotonic() - started < DOWN_FOR_S:
            assert viewer.poll() is None, viewer.communicate()[1]
            time.sleep(1)
        status, reason = get(page_port, "/healthz")
        assert status == 503 and reason.startswith("source reconnecting: ") and "attempts in" in reason, reason
        stats = json.loads(get(page_port, "/api/stats")[1])
        assert stats["health"]["source"]["state"] == "reconnecting" and stats["health"]["source"]["attempts"] >= 3
        assert stats["processed"] == 0
        with network_camera(camera_port):
            answered = time.monotonic()
            wait_for(lambda: get(page_port, "/healthz")[0] == 200, "the viewer picking up the camera", 60)
            picked_up_s = time.monotonic() - answered
            assert json.loads(get(page_port, "/api/stats")[1])["health"]["source"]["state"] == "connected"
            viewer.terminate()  # while the camera still serves: its going away would be a second loss
            _, stderr = viewer.communicate(timeout=30)
        print(f"picked up {picked_up_s:.1f} s after the camera answered")  # the figure for the table
    finally:
        if viewer.poll() is None:
            viewer.kill()
            viewer.communicate()
    assert viewer.returncode == 0, stderr
    assert stderr.count("retrying, at least every") == 1, stderr  # said once, not at every attempt
    assert "is back after" in stderr


def test_an_http_port_in_use_is_waited_for_while_the_camera_runs():
    settings = load_settings("detect", None, [*PET, "http.enabled=true"])
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings.device.http.port = port
        server = HttpPublisher(settings.device.http)
        stats = Stats()
        server.start(PublishContext(settings, stats, settings.pipeline.publish))  # does not raise
        waiting = stats.health_documents()["http"]
        assert waiting["state"] == "waiting" and f"http.port {port} is in use" in str(waiting["last_error"])
    try:
        wait_for(lambda: stats.health_documents()["http"]["state"] == "listening", "the port to be taken up", 30)
        assert get(port, "/healthz")[0] in (200, 503)  # answered: served, whatever the (absent) camera says
    finally:
        server.close(time.monotonic() + 5)


def test_a_snapshot_folder_on_a_disk_not_mounted_yet_is_waited_for_not_made_on_the_card(tmp_path, caplog):
    """snapshots.dir on a USB stick: until the stick's folder appears (frame 5 here), snapshots are dropped and
    counted, the folder is not created beneath it, the run goes on; afterwards snapshots are written there."""
    stick = tmp_path / "usb"
    settings = cat_settings(tmp_path, f"camera.source={alternating_folder(tmp_path, cats=5)}",
                            f"snapshots.dir={stick / 'snapshots'}", "snapshots.cooldown_s=0")
    mounted = Collector(at={5: stick.mkdir})
    with caplog.at_level(logging.INFO, logger="app.outputs.snapshots"):
        stats = Pipeline(settings, [mounted, SnapshotPublisher(settings.device.snapshots)]).run()
    assert stats.processed == 9
    assert stats.drops["snapshot_no_folder"] == 2  # the cats of frames 1 and 3
    assert len(list((stick / "snapshots").glob("*.jpg"))) == 3  # frames 5, 7, 9
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and r.name.endswith("snapshots")]
    assert len(warnings) == 1 and "a disk not mounted yet?" in warnings[0]
    assert any("is there now" in r.getMessage() for r in caplog.records)


def test_a_json_lines_file_on_a_disk_not_mounted_yet_is_waited_for_by_a_live_run(tmp_path, caplog):
    stick = tmp_path / "usb"
    settings = load_settings("detect", None, [*PET, "camera.source=pattern", "camera.width=320",
                                              "camera.height=240", "jsonl.enabled=true",
                                              f"jsonl.path={stick / 'results.jsonl'}"])
    with caplog.at_level(logging.INFO, logger="app.outputs.jsonl"), \
            Background(Pipeline(settings, build_publishers(settings))) as run:
        wait_for(lambda: run.pipeline.stats.processed >= 5, "frames while the stick is away", 60)
        assert not stick.exists()  # not made on the card beneath
        stick.mkdir()
        wait_for(lambda: (stick / "results.jsonl").is_file() and len(
            (stick / "results.jsonl").read_text().splitlines()) >= 5, "lines once the stick is there", 60)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.endswith("jsonl")]
    assert len(warnings) == 1 and "a disk not mounted yet?" in warnings[0]
    lines = (stick / "results.jsonl").read_text().splitlines()
    assert all(json.loads(line)["pipeline"] == "detect" for line in lines)


def test_a_json_lines_folder_that_is_not_there_fails_a_run_on_a_file_at_once(tmp_path, cat_clip):
    settings = load_settings("detect", None, [*PET, f"camera.source={cat_clip}", "jsonl.enabled=true",
                                              f"jsonl.path={tmp_path / 'usb' / 'results.jsonl'}"])
    with pytest.raises(ConfigError, match=r"jsonl.path: cannot open .*results.jsonl for writing"):
        Pipeline(settings, build_publishers(settings)).run()


@pytest.mark.parametrize("bind, reason", [
    ("192.0.2.7", "http.bind 192.0.2.7 is not an address of this board yet"),
    ("camera-lan.invalid", "http.bind camera-lan.invalid does not resolve yet"),  # .invalid never resolves
])
def test_an_http_address_that_is_not_up_yet_is_waited_for(bind, reason):
    """http.bind names an address the board does not have yet (its network not up at boot), or a name DNS cannot
    resolve yet: not an exit 2."""
    settings = load_settings("detect", None, [*PET, "http.enabled=true", f"http.bind={bind}",
                                              f"http.port={free_port()}", "http.token=0123456789abcdef"])
    server = HttpPublisher(settings.device.http)
    stats = Stats()
    server.start(PublishContext(settings, stats, settings.pipeline.publish))  # does not raise
    try:
        waiting = stats.health_documents()["http"]
        assert waiting["state"] == "waiting" and reason in str(waiting["last_error"])
    finally:
        server.close(time.monotonic() + 5)
