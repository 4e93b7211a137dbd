"""A relative `camera.source` (and `cameras[i].source`) written in config.yaml is read relative to that file's
folder, as the README says every relative path in config.yaml is; the spellings that name no file are left as
written, and a source given on the command line (`--source`, `--set camera.source=`) stays relative to the current
directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.config import load_cameras, load_settings
from conftest import IMAGES, MODELS, app


def config_in(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("written", ["clip.mp4", "photos/", "shots/*.jpg", "./cat.bmp", "../elsewhere/clip.mkv"])
def test_a_relative_path_source_is_read_relative_to_config_yaml(tmp_path, monkeypatch, written):
    config = config_in(tmp_path / "conf", f"camera: {{source: '{written}'}}\n")
    monkeypatch.chdir(tmp_path)  # not the config's folder
    source = load_settings("classify", config).device.camera.source
    assert source == str(tmp_path / "conf" / written.strip())


def test_each_camera_of_cameras_gets_its_source_relative_to_config_yaml(tmp_path, monkeypatch):
    config = config_in(tmp_path / "conf", "cameras:\n  - {name: front, source: front.mp4, pipeline: classify}\n"
                                          "  - {name: back, source: pattern, pipeline: classify}\n")
    monkeypatch.chdir(tmp_path)
    sources = [run.device.camera.source for run in load_cameras("classify", config)]
    assert sources == [str(tmp_path / "conf" / "front.mp4"), "pattern"]


@pytest.mark.parametrize("written", ["auto", "picamera2", "pattern", "0", "/dev/video2", "/dev/v4l/by-id/usb-cam",
                                     "rtsp://cam.local/stream1", "http://cam/mjpg", "/srv/clips/clip.mp4"])
def test_what_names_no_relative_file_is_left_as_written(tmp_path, written):
    config = config_in(tmp_path / "conf", f"camera: {{source: '{written}'}}\n")
    assert load_settings("classify", config).device.camera.source == written


def test_a_source_from_the_command_line_stays_relative_to_the_current_directory(tmp_path):
    config = config_in(tmp_path / "conf", "camera: {source: clip.mp4}\n")
    for override in ("camera.source=other.mp4", "camera.source='other.mp4'"):  # --set, and --source as it becomes
        assert load_settings("classify", config, [override]).device.camera.source == "other.mp4"


def test_validate_finds_an_image_beside_the_config_from_another_directory(tmp_path):
    shutil.copy(IMAGES / "cat.bmp", tmp_path / "cat.bmp")
    config = config_in(tmp_path, f"camera: {{source: cat.bmp}}\nmodels: {{dir: {MODELS}}}\n")
    proc = app("validate", "--pipeline", "classify", "--config", config)  # run from the checkout, not tmp_path
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr
    assert "is not there" not in proc.stderr
