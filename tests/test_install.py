"""install.sh, the constraints files and the systemd units.

The plan (`--dry-run`) is checked on this machine and on simulated platforms (SMARTCAM_PLATFORM_OVERRIDE) and
boards (SMARTCAM_ROOT: a folder that holds what a board already has, so each test sets up the state it checks);
one real `install.sh --dev` runs in a fresh copy of the project (about a minute: pip installs LiteRT, OpenCV, ...),
then again to show that a second run changes nothing. `systemd-analyze verify` checks the units against a
throwaway root that holds systemd's own units and a stand-in for /opt/smartcam/.venv/bin/python.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from conftest import IMAGES, MODELS, PROJECT

CONSTRAINTS = PROJECT / "constraints"
SYSTEMD = PROJECT / "systemd"
PREFIX = "/opt/smartcam"
SYSTEM_PATHS = ["/opt/smartcam", "/etc/smartcam", "/var/lib/smartcam", "/var/cache/smartcam",
                "/etc/systemd/system/smartcam.service", "/etc/udev/rules.d/99-coral-edgetpu.rules",
                "/etc/apt/sources.list.d/coral-edgetpu.list", "/etc/apt/keyrings/coral-edgetpu.gpg"]


def project_files() -> list[str]:
    """The project's own files (tracked and new, not ignored: no .venv, no downloaded models)."""
    try:
        listed = subprocess.run(["git", "-C", str(PROJECT), "ls-files", "-co", "--exclude-standard"],
                                capture_output=True, text=True, check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        listed = [str(p.relative_to(PROJECT)) for p in PROJECT.rglob("*") if p.is_file()
                  and not {".venv", ".git", "__pycache__", ".pytest_cache"} & set(p.relative_to(PROJECT).parts)]
    return sorted(f for f in listed if f and (PROJECT / f).is_file())


def fresh_copy(where: Path) -> Path:
    """The project as a fresh clone has it, in `where/smartcam`."""
    root = where / "smartcam"
    for name in project_files():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / name, root / name)
    return root


def install(*args: str, cwd: Path = PROJECT, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("SMARTCAM_PLATFORM_OVERRIDE", "SMARTCAM_ROOT", "PYTHON")}
    return subprocess.run(["bash", str(cwd / "install.sh"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**environment, **env}, stdin=subprocess.DEVNULL)


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under root with its size and modification time."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            stat = path.lstat()
            found[str(path.relative_to(root))] = (stat.st_size if not path.is_dir() else 0, stat.st_mtime_ns)
    return found


def this_platforms_constraints() -> str:
    """The constraints file install.sh must pick on this machine, decided as its README says."""
    os_release = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', Path("/etc/os-release").read_text(), re.M))
    codename = os_release.get("VERSION_CODENAME", "")
    model = Path("/proc/device-tree/model")
    pi_os = (model.is_file() and b"Raspberry Pi" in model.read_bytes()
             and any(Path(f"/etc/apt/sources.list.d/raspi.{ext}").exists() for ext in ("list", "sources")))
    if pi_os and codename == "bookworm":
        return "constraints/bookworm-pi.txt"
    return "constraints/trixie.txt" if codename == "trixie" else "constraints/default.txt"


SERVICE_UID, SERVICE_GID = 990, 990


def board(where: Path, *, systemd: bool = False, service_user: bool = False) -> Path:
    """A board's state for SMARTCAM_ROOT: nothing installed and no systemd running (a container, a chroot), unless
    asked. With `service_user`, /etc/passwd and /etc/group hold the user smartcam in video and plugdev, and this
    process's uid and gid are named root and smartcam there: a file this test writes is "root:smartcam"."""
    root = where / "board"
    (root / "etc").mkdir(parents=True)
    if systemd:
        (root / "run/systemd/system").mkdir(parents=True)
    if service_user:
        uid, gid = os.getuid(), os.getgid()
        (root / "etc/passwd").write_text(
            f"root:x:{uid}:{gid}:root:/root:/bin/sh\n"
            f"smartcam:x:{SERVICE_UID}:{SERVICE_GID}:smartcam camera service:/var/lib/smartcam:/usr/sbin/nologin\n")
        (root / "etc/group").write_text(f"smartcam:x:{gid}:\nvideo:x:44:smartcam\nplugdev:x:46:smartcam\n")
    return root


def put(root: Path, path: str, text: str = "x\n", mode: int = 0o644) -> Path:
    """A file at `path` (absolute, as on the board) under root."""
    file = root / path.lstrip("/")
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    file.chmod(mode)
    return file


def existing_system_paths() -> set[str]:
    return {p for p in SYSTEM_PATHS if os.path.lexists(p)}


def edgetpu_pair() -> configparser.ConfigParser:
    pair = configparser.ConfigParser()
    pair.read(CONSTRAINTS / "edgetpu.ini")
    return pair


# --- constraints files --------------------------------------------------------------------------------------------

def requirements(name: str) -> dict[str, Requirement]:
    lines = [line.split("#")[0].strip() for line in (CONSTRAINTS / name).read_text().splitlines()]
    return {r.name: r for r in (Requirement(line) for line in lines if line)}


def test_bookworm_pi_keeps_numpy_1_for_the_apt_camera_stack():
    pins = requirements("bookworm-pi.txt")
    numpy, opencv = pins["numpy"].specifier, pins["opencv-python-headless"].specifier
    assert numpy.contains("1.24.2") and numpy.contains("1.26.4") and not numpy.contains("2.0.0")
    assert opencv.contains("4.11.0.86") and not opencv.contains("4.12.0.88") and not opencv.contains("5.0.0.93")
    assert pins["ai-edge-litert"].specifier.contains("2.3.0")


def test_trixie_has_only_litert_with_python_3_13_wheels():
    pins = requirements("trixie.txt")
    litert = pins["ai-edge-litert"].specifier
    assert litert.contains("2.1.0") and not litert.contains("1.4.0") and not litert.contains("2.0.2")
    assert "tflite-runtime" not in pins
    assert pins["numpy"].specifier.contains("2.2.4") and not pins["numpy"].specifier.contains("1.26.4")


def test_default_allows_numpy_2_and_opencv_5():
    pins = requirements("default.txt")
    assert pins["numpy"].specifier.contains("2.4.6") and pins["opencv-python-headless"].specifier.contains("5.0.0.93")


def test_armv7l_is_a_refusal_with_its_reason():
    text = (CONSTRAINTS / "armv7l.txt").read_text()
    assert requirements("armv7l.txt") == {}
    reason = re.search(r"^# unsupported: (.+)$", text, re.M)
    assert reason and "64-bit" in reason.group(1)


def test_the_edgetpu_pair_is_one_tensorflow_version():
    pair = edgetpu_pair()
    libedgetpu, interpreter = pair["libedgetpu"], pair["interpreter"]
    assert libedgetpu["version"] == "16.0tf2.19.1-1" and libedgetpu["tensorflow"].startswith(interpreter["tensorflow"])
    requirement = Requirement(interpreter["requirement"])
    assert requirement.name == interpreter["package"] == "ai-edge-litert"
    assert requirement.specifier.contains(interpreter["version"]) and not requirement.specifier.contains("1.3.0")
    assert libedgetpu["packages"].split() == ["libedgetpu1-std", "libedgetpu1-max"]
    assert f"_{libedgetpu['version']}." in libedgetpu["url"] and libedgetpu["url"].startswith("https://")
    for name, digest in pair["sha256"].items():
        assert name.startswith("libedgetpu1-") and re.fullmatch(r"[0-9a-f]{64}", digest)
    # the default dependency set allows the pinned interpreter, so --coral only narrows it
    assert requirements("default.txt")["ai-edge-litert"].specifier.contains(interpreter["version"])
    assert requirements("bookworm-pi.txt")["ai-edge-litert"].specifier.contains(interpreter["version"])


# --- the plan: --dry-run ------------------------------------------------------------------------------------------

def test_help_and_bad_options(tmp_path):
    shown = install("--help")
    assert shown.returncode == 0
    for word in ("--dev", "--models-from", "--coral", "--coral-max", "--service", "--uninstall", "--purge",
                 "--dry-run", "SMARTCAM_PLATFORM_OVERRIDE", "SMARTCAM_ROOT"):
        assert word in shown.stdout
    unknown = install("--frobnicate")
    assert unknown.returncode == 2 and "unknown option --frobnicate" in unknown.stderr
    assert install("--purge").returncode == 2  # only with --uninstall
    assert install("--models-from").returncode == 2
    assert install("--service", "--pipeline", "nosuch", "--dry-run").returncode == 2
    simulated = install("--dev", SMARTCAM_PLATFORM_OVERRIDE="raspios-bookworm-aarch64")
    assert simulated.returncode == 2 and "--dry-run" in simulated.stderr
    rooted = install("--dev", SMARTCAM_ROOT=str(tmp_path))
    assert rooted.returncode == 2 and "--dry-run" in rooted.stderr
    nowhere = install("--dry-run", SMARTCAM_ROOT=str(tmp_path / "nosuch"))
    assert nowhere.returncode == 2 and "no such folder" in nowhere.stderr


def test_dry_run_on_this_machine_prints_the_plan_and_changes_nothing(tmp_path):
    copy = fresh_copy(tmp_path)
    before, system_before = tree(copy), existing_system_paths()
    plan = install("--dry-run", cwd=copy)
    assert plan.returncode == 0, plan.stderr
    out = plan.stdout
    os_release = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', Path("/etc/os-release").read_text(), re.M))
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(
        subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip())
    assert f"{os_release['PRETTY_NAME']}, {arch}" in out
    assert "plain venv" in out and f"-m venv {copy}/.venv" in out and "--system-site-packages" not in out
    assert f"-c {copy}/{this_platforms_constraints()} -e {copy}" in out
    assert "-m app models pull" in out
    for name in ("platform", "virtual environment", "dependencies", "check", "models"):
        assert re.search(rf"^==> .*{name}", out, re.M), name
    assert out.rstrip().endswith(f"done: {copy}/.venv/bin/python -m app --pipeline detect")
    assert tree(copy) == before and not (copy / ".venv").exists()
    assert existing_system_paths() == system_before


def test_dry_run_coral_and_service_on_a_fresh_board(tmp_path):
    copy, root = fresh_copy(tmp_path), board(tmp_path)
    system_before = existing_system_paths()
    plan = install("--dry-run", "--coral", "--service", cwd=copy, SMARTCAM_ROOT=str(root),
                   SMARTCAM_PLATFORM_OVERRIDE="debian-bookworm-x86_64")
    assert plan.returncode == 0, plan.stderr
    out, pair = plan.stdout, edgetpu_pair()
    version, requirement = pair["libedgetpu"]["version"], pair["interpreter"]["requirement"]
    # the matched Edge TPU runtime, verified, held; the interpreter it was built with
    deb = f"libedgetpu1-std_{version}.bookworm_amd64.deb"
    assert deb in out and pair["sha256"][deb] in out
    assert f"curl -fsSL --retry 3 -o /var/cache/smartcam/{deb}.part" in out
    assert re.search(rf"apt-get install .*/var/cache/smartcam/{re.escape(deb)}$", out, re.M)
    assert "apt-mark hold libedgetpu1-std" in out and "sha256" in out
    assert f"-e {PREFIX} {requirement}" in out
    assert "install -D -m 0644" in out and "/etc/udev/rules.d/99-coral-edgetpu.rules" in out
    assert "pip install pycoral" not in out and "apt-key" not in out and "Coral's apt repository" not in out
    # the service: user, the app in /opt/smartcam, configuration, state, units
    assert re.search(r"useradd --system .*--groups video,plugdev .*smartcam$", out, re.M)
    assert f"application files in {PREFIX}" in out and f"-m venv {PREFIX}/.venv" in out
    assert "+ write /etc/smartcam/config.yaml (mode 0640, root:smartcam)" in out
    assert "install -d -m 0750 -o smartcam -g smartcam /var/lib/smartcam" in out
    assert "models pull ssd_mobilenet_v2_coco_quant_postprocess ssd_mobilenet_v2_coco_quant_postprocess_edgetpu " \
           "--config /etc/smartcam/config.yaml" in out  # the pipeline's models alone (issue 21), where it looks
    assert "_edgetpu --config /etc/smartcam/config.yaml" in out  # the Edge TPU variants of the pipelines' models
    assert f"install -D -m 0644 {copy}/systemd/smartcam@.service /etc/systemd/system/smartcam@.service" in out
    assert re.search(r"install -D -m 0644 \S+/smartcam\.service /etc/systemd/system/smartcam\.service$", out, re.M)
    assert existing_system_paths() == system_before and not (copy / ".venv").exists()


def test_service_where_systemd_runs_is_enabled_and_started(tmp_path):
    plan = install("--dry-run", "--service", SMARTCAM_ROOT=str(board(tmp_path, systemd=True)))
    assert plan.returncode == 0, plan.stderr
    out = plan.stdout
    assert "==> service smartcam.service: enabled and started" in out
    assert "+ systemctl daemon-reload" in out.replace("sudo ", "")
    assert "+ systemctl enable smartcam.service" in out.replace("sudo ", "")
    assert "+ systemctl start --no-block smartcam.service" in out.replace("sudo ", "")
    assert re.search(r"^  done: the service smartcam.service is started from /opt/smartcam", out, re.M)
    assert "not running" not in out


def test_service_without_systemd_says_it_was_not_started(tmp_path):
    """A container or a chroot: the units are installed, and the last line does not claim a running service."""
    plan = install("--dry-run", "--service", "--pipeline", "face", SMARTCAM_ROOT=str(board(tmp_path)))
    assert plan.returncode == 0, plan.stderr
    out = plan.stdout
    assert "/etc/systemd/system/smartcam@.service" in out
    assert "==> service smartcam@face.service: not enabled or started, systemd is not running here" in out
    assert "systemctl enable" not in out.replace("systemctl enable --now smartcam@face.service", "")
    assert "systemctl start" not in out
    last = out.rstrip().splitlines()[-1]
    assert "systemd is not running here, so smartcam@face.service was neither enabled nor started" in last
    assert "systemctl enable --now smartcam@face.service" in last
    assert "is started" not in out and "the service" not in last


def test_service_hints_name_the_service_config(tmp_path):
    """`models pull` without --config fills /opt/smartcam/models, where the service does not look."""
    plan = install("--dry-run", "--service", "--no-models", SMARTCAM_ROOT=str(board(tmp_path)))
    assert plan.returncode == 0, plan.stderr
    pull = f"{PREFIX}/.venv/bin/python -m app models pull --config /etc/smartcam/config.yaml"
    assert f"==> models: skipped ({pull} fetches them)" in plan.stdout
    assert plan.stdout.rstrip().splitlines()[-1] == f"    models: {pull}"
    assert re.findall(r"models pull(?! --config /etc/smartcam/config\.yaml)", plan.stdout) == []
    by_hand = install("--dry-run", "--no-models")
    assert f"==> models: skipped ({PROJECT}/.venv/bin/python -m app models pull fetches them)" in by_hand.stdout


def pulled(out: str) -> list[str]:
    """The model names of each `models pull` the plan runs."""
    return [line.split(" models pull ", 1)[1].split(" --")[0] for line in out.splitlines() if " models pull " in line
            and line.lstrip().startswith("+ ")]


def test_only_the_installed_pipelines_models_are_fetched(tmp_path):
    """A --models-from folder needs the files of the pipeline installed, none of another's."""
    folder = tmp_path / "offline"
    folder.mkdir()
    face = install("--dry-run", "--service", "--pipeline", "face", "--models-from", str(folder),
                   SMARTCAM_ROOT=str(board(tmp_path)))
    assert face.returncode == 0, face.stderr
    assert pulled(face.stdout) == ["face_detection_short_range"]
    assert f"--config /etc/smartcam/config.yaml --from {folder}" in face.stdout
    detect = install("--dry-run")
    assert pulled(detect.stdout) == ["ssd_mobilenet_v2_coco_quant_postprocess"]
    coral = install("--dry-run", "--coral", SMARTCAM_PLATFORM_OVERRIDE="debian-bookworm-x86_64")
    assert pulled(coral.stdout) == [
        "ssd_mobilenet_v2_coco_quant_postprocess ssd_mobilenet_v2_coco_quant_postprocess_edgetpu"]


def test_the_units_are_installed_before_the_models_and_the_service_started_after_them(tmp_path):
    """A model fetch that fails (a --models-from folder without the file, no network) leaves the units installed;
    the service is not started without its model (it would stop at once, exit 2), but once run again fetches it."""
    plan = install("--dry-run", "--service", SMARTCAM_ROOT=str(board(tmp_path, systemd=True)))
    assert plan.returncode == 0, plan.stderr
    steps = [line for line in plan.stdout.splitlines() if line.startswith("==> ")]
    order = [next(i for i, step in enumerate(steps) if step.startswith(start)) for start in (
        "==> systemd units", "==> models of pipeline detect", "==> service smartcam.service: enabled and started")]
    assert order == sorted(order), steps


def test_dry_run_service_config_is_valid_and_keeps_state_under_var_lib(tmp_path):
    plan = install("--dry-run", "--service", SMARTCAM_ROOT=str(board(tmp_path)))
    assert plan.returncode == 0, plan.stderr
    block = re.search(r"\+ write /etc/smartcam/config\.yaml .*:\n((?:        \| .*\n?)+)", plan.stdout)
    assert block, plan.stdout
    config = tmp_path / "config.yaml"
    config.write_text("".join(line[10:] + "\n" for line in block.group(1).splitlines()))
    data = yaml.safe_load(config.read_text())
    assert data["models"]["dir"] == "/var/lib/smartcam/models"
    assert data["snapshots"]["dir"] == "/var/lib/smartcam/snapshots"
    original = yaml.safe_load((PROJECT / "config.yaml").read_text())
    assert {k: v for k, v in data.items() if k not in ("models", "snapshots")} == \
        {k: v for k, v in original.items() if k not in ("models", "snapshots")}
    from app.config import load_device
    assert load_device(config).models_dir == Path("/var/lib/smartcam/models")


def test_a_board_with_the_service_keeps_its_config_and_user(tmp_path):
    root = board(tmp_path, service_user=True)
    put(root, "/etc/smartcam/config.yaml", "camera: {name: porch}\n", mode=0o640)
    plan = install("--dry-run", "--service", SMARTCAM_ROOT=str(root))
    assert plan.returncode == 0, plan.stderr
    out = plan.stdout
    assert "already done: /etc/smartcam/config.yaml exists: kept as it is" in out
    assert "+ write /etc/smartcam/config.yaml" not in out
    assert "already done: user smartcam (video plugdev)" in out
    assert "already done: group video" in out and "useradd" not in out and "usermod" not in out
    # the same file readable by others, from an install done by hand: made the service's secret again
    (root / "etc/smartcam/config.yaml").chmod(0o644)
    loose = install("--dry-run", "--service", SMARTCAM_ROOT=str(root))
    assert "+ chmod 0640 /etc/smartcam/config.yaml" in loose.stdout.replace("sudo ", "")
    assert "chown" not in loose.stdout.replace("chown -R smartcam:smartcam /var/lib/smartcam", "")


def test_dry_run_coral_max_preseeds_the_eula_and_warns_of_heat(tmp_path):
    plan = install("--dry-run", "--coral-max", SMARTCAM_PLATFORM_OVERRIDE="debian-bookworm-x86_64",
                   SMARTCAM_ROOT=str(board(tmp_path)))
    assert plan.returncode == 0, plan.stderr
    assert "libedgetpu1-max libedgetpu/accepted-eula boolean true' | debconf-set-selections" in plan.stdout
    assert "hot enough to burn" in plan.stderr
    assert "apt-mark hold libedgetpu1-max" in plan.stdout and "libedgetpu1-max_16.0tf2.19.1-1" in plan.stdout


def test_dry_run_coral_apt_uses_a_signed_by_keyring_and_pins_its_libedgetpu_away(tmp_path):
    root = board(tmp_path)
    plan = install("--dry-run", "--coral-apt", SMARTCAM_PLATFORM_OVERRIDE="ubuntu-noble-x86_64",
                   SMARTCAM_ROOT=str(root))
    assert plan.returncode == 0, plan.stderr
    out = plan.stdout
    assert "gpg --dearmor -o /etc/apt/keyrings/coral-edgetpu.gpg" in out
    assert ("deb [signed-by=/etc/apt/keyrings/coral-edgetpu.gpg] https://packages.cloud.google.com/apt "
            "coral-edgetpu-stable main") in out
    assert "Pin-Priority: -1" in out
    assert not re.search(r"apt-key (add|adv)", out)  # apt-key is gone from Trixie
    assert "libedgetpu1-std" in out  # --coral-apt implies --coral
    # a second run: the keyring is there, and is not fetched again
    put(root, "/etc/apt/keyrings/coral-edgetpu.gpg")
    again = install("--dry-run", "--coral-apt", SMARTCAM_PLATFORM_OVERRIDE="ubuntu-noble-x86_64",
                    SMARTCAM_ROOT=str(root))
    assert "already done: /etc/apt/keyrings/coral-edgetpu.gpg" in again.stdout and "gpg --dearmor" not in again.stdout


REMOVED = ["/etc/systemd/system/smartcam.service", "/etc/systemd/system/smartcam@.service",
           "/etc/udev/rules.d/99-coral-edgetpu.rules", "/opt/smartcam", "/etc/smartcam", "/var/lib/smartcam",
           "/etc/apt/sources.list.d/coral-edgetpu.list", "/etc/apt/keyrings/coral-edgetpu.gpg",
           "/etc/apt/preferences.d/smartcam-libedgetpu", "/var/cache/smartcam"]


def test_dry_run_uninstall_purge_names_every_removal(tmp_path):
    copy = fresh_copy(tmp_path)
    (copy / ".venv" / "bin").mkdir(parents=True)
    (copy / "models" / "some_model.tflite").write_bytes(b"x")
    root = board(tmp_path, service_user=True)
    for path in REMOVED:
        put(root, path if "." in path.rsplit("/", 1)[1] else f"{path}/something")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "smartcam@face.service").symlink_to("/etc/systemd/system/smartcam@.service")
    before = tree(copy), tree(root)
    plan = install("--dry-run", "--uninstall", "--purge", cwd=copy, SMARTCAM_ROOT=str(root))
    assert plan.returncode == 0, plan.stderr
    out = plan.stdout.replace("sudo ", "")
    assert f"+ rm -rf {copy}/.venv" in out and f"+ rm -f {copy}/models/some_model.tflite" in out
    for path in REMOVED:
        assert f"+ rm -rf {path}\n" in out, path
    assert "removing the enablement links" in out  # systemd is not running on this board
    assert "+ rm -rf /etc/systemd/system/multi-user.target.wants/smartcam@face.service" in out
    assert "+ userdel smartcam" in out and "already absent: user" not in out and "already absent: /" not in out
    assert (tree(copy), tree(root)) == before  # a dry run
    kept = install("--dry-run", "--uninstall", cwd=copy, SMARTCAM_ROOT=str(root))
    assert "kept /etc/smartcam" in kept.stdout and f"+ rm -rf {copy}/.venv" in kept.stdout
    assert "rm -rf /etc/smartcam" not in kept.stdout and "some_model.tflite" not in kept.stdout


def test_dry_run_uninstall_where_nothing_is_installed_says_so_for_each(tmp_path):
    copy = fresh_copy(tmp_path)
    plan = install("--dry-run", "--uninstall", "--purge", cwd=copy, SMARTCAM_ROOT=str(board(tmp_path, systemd=True)))
    assert plan.returncode == 0, plan.stderr
    out = plan.stdout.replace("sudo ", "")
    for path in [*REMOVED, f"{copy}/.venv"]:
        assert f"already absent: {path}\n" in out, path
    assert "already absent: user smartcam" in out and "already absent: downloaded models" in out
    assert "+ systemctl disable --now smartcam.service" in out  # systemd runs on this board
    assert "rm -" not in out


def readme_before(heading: str) -> str:
    text = (PROJECT / "README.md").read_text()
    return text[:text.index(heading)]


def test_the_readme_names_the_prerequisites_a_fresh_debian_lacks():
    """A fresh Debian has no python3, python3-venv, git, nor sudo: the quick start installs them as root."""
    quick_start = readme_before("## Install on a board")
    blocks = re.findall(r"```sh\n(.*?)```", quick_start, re.S)
    assert blocks and blocks[0].strip() == "apt-get update && apt-get install -y python3 python3-venv git"
    assert "git clone" in blocks[1] and "./install.sh" in blocks[1]


def test_the_readme_commands_run_as_written_on_debian():
    """Debian has no `python` command: every command the README gives before its configuration reference runs the
    venv's Python (the Commands table is a synopsis, and the README says once what its `python` means)."""
    text = readme_before("## Commands")
    commands = [line for block in re.findall(r"```sh\n(.*?)```", text, re.S) for line in block.splitlines()]
    commands += re.findall(r"^\| [^|]+ \| `([^`]+)`", text, re.M)  # the Running table
    assert len(commands) > 10
    pythons = [python for c in commands for python in re.findall(r"(\S*python3?) -m ", c)]
    assert len(pythons) > 10
    bare = [python for python in pythons if python not in (".venv/bin/python", "/opt/smartcam/.venv/bin/python")]
    assert not bare, bare
    assert "`.venv/bin/python -m app ...`" in text and "`python -m app`" in text  # what `python -m app` means


# --- simulated platforms --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("platform,python", [("debian-bookworm-x86_64", "3.11"), ("debian-trixie-x86_64", "3.13"),
                                             ("ubuntu-jammy-aarch64", "3.10"), ("raspios-bookworm-aarch64", "3.11")])
def test_a_simulated_platform_brings_its_own_python(platform, python):
    """The plan for a platform is the same on any machine: its Python is the platform's, not this machine's."""
    plan = install("--dry-run", SMARTCAM_PLATFORM_OVERRIDE=platform)
    assert plan.returncode == 0, plan.stderr
    assert re.search(rf"\[simulated: SMARTCAM_PLATFORM_OVERRIDE\], \w+(, .*)?, Python {re.escape(python)} ",
                     plan.stdout)


def test_a_simulated_platform_with_an_old_python_is_refused():
    plan = install("--dry-run", SMARTCAM_PLATFORM_OVERRIDE="debian-bullseye-x86_64")
    assert plan.returncode == 1 and "needs Python 3.10 or newer" in plan.stderr and "3.9" in plan.stderr
    unknown = install("--dry-run", SMARTCAM_PLATFORM_OVERRIDE="debian-nosuch-x86_64")
    assert unknown.returncode == 2 and "no known Python for nosuch" in unknown.stderr


def test_raspberry_pi_os_bookworm_uses_the_apt_camera_stack(tmp_path):
    copy = fresh_copy(tmp_path)
    plan = install("--dry-run", cwd=copy, SMARTCAM_PLATFORM_OVERRIDE="raspios-bookworm-aarch64",
                   SMARTCAM_ROOT=str(board(tmp_path)))
    assert plan.returncode == 0, plan.stderr
    out = plan.stdout
    assert "Raspberry Pi OS (bookworm)" in out and "aarch64" in out
    assert re.search(r"apt-get install .* python3-venv python3-picamera2$", out, re.M)
    assert f"-m venv --system-site-packages {copy}/.venv" in out
    assert "constraints/bookworm-pi.txt" in out and "constraints/default.txt" not in out


def test_raspberry_pi_os_bookworm_with_a_coral_gets_the_arm64_build(tmp_path):
    plan = install("--dry-run", "--coral", SMARTCAM_PLATFORM_OVERRIDE="raspios-bookworm-aarch64",
                   SMARTCAM_ROOT=str(board(tmp_path)))
    assert plan.returncode == 0, plan.stderr
    digest = edgetpu_pair()["sha256"]["libedgetpu1-std_16.0tf2.19.1-1.bookworm_arm64.deb"]
    assert "libedgetpu1-std_16.0tf2.19.1-1.bookworm_arm64.deb" in plan.stdout and digest in plan.stdout
    assert "-c " + str(PROJECT / "constraints/bookworm-pi.txt") in plan.stdout
    assert "ai-edge-litert==1.2.0" in plan.stdout


@pytest.mark.parametrize("platform", ["raspios-trixie-aarch64", "debian-trixie-x86_64"])
def test_trixie_picks_its_constraints_and_refuses_the_coral(platform):
    plan = install("--dry-run", SMARTCAM_PLATFORM_OVERRIDE=platform)
    assert plan.returncode == 0, plan.stderr
    assert "constraints/trixie.txt" in plan.stdout
    coral = install("--dry-run", "--coral", SMARTCAM_PLATFORM_OVERRIDE=platform)
    assert coral.returncode == 1 and "no matched Edge TPU pair" in coral.stderr and "3.13" in coral.stderr
    assert "Nothing was changed" in coral.stderr and "==> system packages" not in coral.stdout


@pytest.mark.parametrize("platform", ["raspios-bookworm-armv7l", "debian-bookworm-armv6l"])
def test_32_bit_arm_is_refused_before_anything_changes(platform):
    plan = install("--dry-run", SMARTCAM_PLATFORM_OVERRIDE=platform)
    found = re.search(r"^# unsupported: (.+)$", (CONSTRAINTS / "armv7l.txt").read_text(), re.M)
    assert found is not None, "constraints/armv7l.txt gives no reason"
    reason = found.group(1)
    assert plan.returncode == 1 and reason in plan.stderr and "nothing was changed" in plan.stderr
    assert "==> system packages" not in plan.stdout and "venv" not in plan.stdout


def test_a_platform_without_a_libedgetpu_build_is_refused_for_the_coral():
    plan = install("--dry-run", "--coral", SMARTCAM_PLATFORM_OVERRIDE="ubuntu-oracular-x86_64")
    assert plan.returncode == 1 and "no libedgetpu" in plan.stderr


# --- a real install in a fresh copy ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """`install.sh --dev` run once in a fresh copy of the project: (copy, the run)."""
    copy = fresh_copy(tmp_path_factory.mktemp("fresh"))
    run = install("--dev", cwd=copy, timeout=1200)
    assert run.returncode == 0, run.stdout + run.stderr
    return copy, run


def test_install_dev_makes_a_working_venv(installed):
    copy, run = installed
    for name in ("platform", "virtual environment", "dependencies", "check", "models: skipped"):
        assert re.search(rf"^==> .*{name}", run.stdout, re.M), name
    assert "runtime: ai-edge-litert" in run.stdout
    python = copy / ".venv" / "bin" / "python"
    result = subprocess.run(
        [str(python), "-m", "app", "--pipeline", "classify", "--source", str(IMAGES / "cat.bmp"),
         "--model", str(MODELS / "mobilenet_v2_1.0_224_quant.tflite"), "--labels", str(MODELS / "imagenet_labels.txt"),
         "--max-frames", "1", "--output", "jsonl:-"], cwd="/", capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["classes"][0]["label"] == "Egyptian cat"
    tests = subprocess.run([str(python), "-m", "pytest", "--version"], capture_output=True, text=True)
    assert tests.returncode == 0  # --dev brought the test dependencies


def test_a_second_install_changes_nothing_and_says_so(installed):
    copy, _ = installed
    python = copy / ".venv" / "bin" / "python"
    freeze = [str(python), "-m", "pip", "freeze", "--disable-pip-version-check"]
    frozen = subprocess.run(freeze, capture_output=True, text=True, check=True).stdout
    before = tree(copy)
    again = install("--dev", cwd=copy)
    assert again.returncode == 0, again.stdout + again.stderr
    assert tree(copy) == before
    assert subprocess.run(freeze, capture_output=True, text=True, check=True).stdout == frozen
    assert f"already done: {copy}/.venv" in again.stdout
    assert f"already done: installed from {this_platforms_constraints()} with [dev]" in again.stdout
    assert "pip install" not in again.stdout and "-m venv" not in again.stdout


def pipeline_model_files(pipeline: str) -> list[str]:
    """The files (model and labels) of the named model `pipeline` uses."""
    from app.config import load_settings
    from app.model.fetch import files_of
    from app.model.manifest import manifest

    return sorted(spec.name for spec in files_of(manifest()[load_settings(pipeline).pipeline.inference.model]))


def test_a_failing_step_stops_the_install_and_says_what_to_do(installed, tmp_path):
    """Offline with a folder that lacks files of the pipeline installed: the hint names them (and no other
    pipeline's), and does not suggest the --models-from just given."""
    copy, _ = installed
    folder = tmp_path / "some-models-here"
    folder.mkdir()
    needed = pipeline_model_files("classify")
    given = next(name for name in needed if (MODELS / name).is_file())
    shutil.copy(MODELS / given, folder / given)
    failed = install("--dev", "--pipeline", "classify", "--models-from", str(folder), cwd=copy)
    assert failed.returncode != 0
    assert f'step "models of pipeline classify from {folder}: mobilenet_v2_1.0_224_quant" failed' in failed.stderr
    hint = re.search(r"^  what to do: (.*)$", failed.stderr, re.M)
    assert hint, failed.stderr
    named = re.match(rf"{re.escape(str(folder))} has no (.+?): ", hint.group(1))
    assert named, hint.group(1)
    assert sorted(named.group(1).split()) == [name for name in needed if name != given]
    assert "--models-from DIR" not in failed.stderr
    assert "run ./install.sh again" in failed.stderr
    assert not re.search(r"^done:", failed.stdout, re.M)


# --- systemd ------------------------------------------------------------------------------------------------------

def unit_text(name: str) -> str:
    """A unit as install.sh installs it: smartcam@.service, the one unit file, as it is; smartcam.service made from it
    by systemd/default-unit.sh."""
    if name == "smartcam.service":
        return subprocess.run([str(SYSTEMD / "default-unit.sh")], capture_output=True, text=True, check=True).stdout
    return (SYSTEMD / name).read_text()


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is not installed: ./install.sh --dev installs Debian's systemd package")
    return path


@pytest.fixture
def unit_root(tmp_path) -> Path:
    """A root for `systemd-analyze --root`: systemd's own units, ours, and stand-ins for the venv's python and for
    kill (ExecReload=)."""
    units = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()), None)
    if units is None:
        pytest.fail("no /usr/lib/systemd/system: ./install.sh --dev installs Debian's systemd package")
    root = tmp_path / "root"
    shutil.copytree(units, root / "usr/lib/systemd/system", symlinks=True)
    for program in (root / PREFIX.lstrip("/") / ".venv/bin/python", root / "bin/kill"):
        program.parent.mkdir(parents=True)
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in ("smartcam.service", "smartcam@.service"):
        (root / "etc/systemd/system" / unit).write_text(unit_text(unit))
    return root


def verify(root: Path, *units: str) -> subprocess.CompletedProcess:
    return subprocess.run([systemd_analyze(), "verify", f"--root={root}", *units],
                          capture_output=True, text=True, timeout=60)


def test_systemd_analyze_verify_accepts_both_units(unit_root):
    """verify exits 0 even for unknown keys or bad values (it only warns), so its output must be empty too.
    It does not look up User=smartcam (install.sh --service creates that user)."""
    result = verify(unit_root, "smartcam.service", "smartcam@detect.service", "smartcam@face.service")
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_systemd_analyze_verify_would_see_a_mistake(unit_root):
    """A value systemd cannot use is reported at its file and line. The words differ between versions (252: "Failed
    to parse protect system value, ignoring: sometimes", 257: "Failed to parse ProtectSystem=sometimes, ignoring"),
    so the check is where it points, and that it names the bad value."""
    unit = unit_root / "etc/systemd/system/smartcam.service"
    lines = unit.read_text().splitlines()
    number = lines.index("WatchdogSec=30") + 2  # the line inserted after it, counted from 1
    lines.insert(number - 1, "ProtectSystem=sometimes")
    unit.write_text("\n".join(lines) + "\n")
    result = verify(unit_root, "smartcam.service")
    output = result.stdout + result.stderr
    assert re.search(rf"^{re.escape(str(unit))}:{number}: .*sometimes", output, re.M), output


def test_the_units_are_hardened(unit_root):
    result = subprocess.run([systemd_analyze(), "security", "--offline=yes", f"--root={unit_root}", "smartcam.service"],
                            capture_output=True, text=True, timeout=60)
    exposure = re.search(r"Overall exposure level for smartcam\.service: ([\d.]+)", result.stdout)
    assert exposure and float(exposure.group(1)) <= 3.0, result.stdout[-2000:]


def unit_settings(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit_text(name).splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


@pytest.mark.parametrize("name,pipeline", [("smartcam.service", "detect"), ("smartcam@.service", "%i")])
def test_the_units_run_the_app_as_the_service_user_with_the_watchdog(name, pipeline):
    from app.cli import build_parser

    unit = unit_settings(name)
    command = unit["ExecStart"][0].split()
    assert command[:3] == [f"{PREFIX}/.venv/bin/python", "-m", "app"]
    args = build_parser().parse_args(command[3:])  # the app's own parser accepts the unit's command line
    assert args.pipeline == pipeline and args.config == "/etc/smartcam/config.yaml"
    expected = {"Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30", "Restart": "on-failure",
                "User": "smartcam", "Group": "smartcam", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                "ProtectHome": "yes", "PrivateTmp": "yes", "DevicePolicy": "closed", "StateDirectory": "smartcam",
                "RestartPreventExitStatus": "2"}
    for key, value in expected.items():
        assert unit[key] == [value], key
    assert {"char-video4linux rw", "char-media rw", "char-dma_heap rw", "char-usb_device rw", "char-apex rw"} \
        <= set(unit["DeviceAllow"])
    assert set(unit["SupplementaryGroups"][0].split()) == {"video", "plugdev"}
    assert f'PREFIX={PREFIX} ' in (PROJECT / "install.sh").read_text()  # where install.sh puts the app


def test_the_default_unit_is_the_template_for_detect_with_its_own_journal_name_and_env_file():
    """One unit file: smartcam.service is smartcam@.service with the pipeline detect, logging as smartcam and reading
    /etc/smartcam/smartcam.env; a setting added to the template is in both."""
    default, template = unit_settings("smartcam.service"), unit_settings("smartcam@.service")
    assert default["SyslogIdentifier"] == ["smartcam"] and default["EnvironmentFile"] == ["-/etc/smartcam/smartcam.env"]
    assert default["Description"] == ["smartcam smart camera (pipeline detect)"]
    assert "%i" not in unit_text("smartcam.service")
    instance = {key: [value.replace("smartcam-%i", "smartcam").replace("%i.env", "smartcam.env")
                      .replace("%i", "detect") for value in values] for key, values in template.items()}
    assert default == instance
    assert [path.name for path in SYSTEMD.glob("*.service")] == ["smartcam@.service"]


def test_the_udev_rule_gives_plugdev_the_coral_usb_ids_and_the_pcie_card():
    rules = [line for line in (SYSTEMD / "99-coral-edgetpu.rules").read_text().splitlines()
             if line and not line.startswith("#")]
    ids = {(m.group(1), m.group(2)) for line in rules
           for m in [re.search(r'ATTRS\{idVendor\}=="(\w+)", ATTRS\{idProduct\}=="(\w+)"', line)] if m}
    assert ids == {("1a6e", "089a"), ("18d1", "9302")}
    assert all('GROUP="plugdev"' in line and 'MODE="0660"' in line for line in rules)
    assert any('SUBSYSTEM=="apex"' in line for line in rules)


def test_systemctl_reload_sends_the_run_a_sighup():
    """`systemctl reload smartcam` is what `python -m app reload` does for a run: a SIGHUP (tests/test_reload.py)."""
    for unit in ("smartcam.service", "smartcam@.service"):
        assert [line for line in unit_text(unit).splitlines() if line.startswith("ExecReload=")] == [
            "ExecReload=/bin/kill -HUP $MAINPID"]
