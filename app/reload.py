"""Reload: the files read again while the cameras run (`systemctl reload smartcam`, SIGHUP, `python -m app reload`).

What a running camera can take live is applied between two frames by the lane it belongs to, and nothing
long-lived is rebuilt for it (DESIGN.md: reload keeps what did not change): zones, lines and the motion gate's
settings (the capture lane), the thresholds of postprocess, filter and track (the inference lane, the tracker and
its ids kept), publish and overlay (the output lane), and the outputs' sections (a publisher whose own section
did not change keeps its connection: MQTT its session, HTTP its socket). What cannot be applied live restarts
that camera alone (`restart_reason`): its source and capture settings, its model (inference and preprocess, the
accelerator, the models folder), the stages it runs, and the robot outputs. A file that does not validate is
refused with the one line `validate` prints; the cameras run on as they were, and the refusal is logged and shown
in each camera's stats (`reload`, in /api/stats and MQTT stats).

`python -m app reload` finds the runs on this machine (`running_runs`) and sends each a SIGHUP, what
`systemctl reload smartcam` does through the unit's ExecReload=.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path

from app.config import Settings
from app.errors import ConfigError

log = logging.getLogger(__name__)

#: camera settings a running camera takes live: the scene's shapes and the motion gate's settings
LIVE_CAMERA_FIELDS = frozenset({"zones", "lines", "motion", "detect_fps"})
#: why a camera whose model changed restarts: it leaves its inference lane for one of its own
MODEL_CHANGED = "its model changed"


def restart_reason(old: Settings, new: Settings) -> str | None:
    """What changed from `old` to `new` that a running camera cannot take live (so it restarts), or None."""
    camera_fields = set(type(old.device.camera).model_fields) - LIVE_CAMERA_FIELDS
    if old.device.camera.model_dump(include=camera_fields) != new.device.camera.model_dump(include=camera_fields):
        return "its source or capture settings changed"
    if (old.pipeline.inference, old.pipeline.preprocess) != (new.pipeline.inference, new.pipeline.preprocess) or (
            old.device.accelerator, old.models_dir) != (new.device.accelerator, new.models_dir):
        return MODEL_CHANGED
    if [name for name, _ in old.pipeline.stages] != [name for name, _ in new.pipeline.stages]:
        return "its stages changed"
    if (old.device.udp, old.device.zmq) != (new.device.udp, new.device.zmq):
        return "its robot outputs changed"
    return None


class Reloader:
    """Reloads on request, in a thread of its own (a signal handler only calls `request`): `load` reads the files
    again and `apply` hands the new settings to the cameras. Its `document` is each camera's `reload` report."""

    def __init__(self, load: Callable[[], list[Settings]], apply: Callable[[list[Settings]], str]) -> None:
        self._load = load
        self._apply = apply
        self._requested = threading.Event()
        self._stopping = False
        self._last: dict[str, object] = {"count": 0}
        self._thread = threading.Thread(target=self._run, name="reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self) -> None:
        """Reload soon (safe in a signal handler)."""
        self._requested.set()

    def stop(self) -> None:
        self._stopping = True
        self._requested.set()

    def document(self) -> dict[str, object]:
        """The last reload: when (wall time), whether it was applied, and what it did or why it was refused."""
        return dict(self._last)

    def _run(self) -> None:
        while self._requested.wait() and not self._stopping:
            self._requested.clear()
            self.reload()

    def reload(self) -> None:
        """Read the files again and apply them, or refuse them with one line; never raises."""
        count = int(str(self._last["count"])) + 1
        try:
            done = self._apply(self._load())
        except ConfigError as exc:
            line = "; ".join(exc.problems)
            log.error("reload refused, running on as before: %s", line)
            self._last = {"count": count, "at": round(time.time(), 3), "ok": False, "error": line}
            return
        except Exception as exc:  # a bug must not end the run it was meant to change
            log.exception("reload failed, running on as before: %s", exc)
            self._last = {"count": count, "at": round(time.time(), 3), "ok": False, "error": str(exc)}
            return
        log.info("reloaded: %s", done)
        self._last = {"count": count, "at": round(time.time(), 3), "ok": True, "applied": done}


def running_runs(commands: Collection[str], config: Path, default_config: Path,
                 proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """The processes on this machine that run a pipeline (`python -m app [run] ...`, `smartcam [run] ...`) on the
    configuration file `config` (theirs: `--config`, from where they run, else `default_config`), as (pid, their
    command line); `commands`: the CLI's commands, of which only `run` runs a pipeline."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = [arg.decode(errors="replace") for arg in (entry / "cmdline").read_bytes().split(b"\0") if arg]
            args = _run_arguments(argv, commands)
            if args is not None and _config_of(args, entry / "cwd", default_config) == config.resolve():
                found.append((int(entry.name), " ".join(argv)))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return sorted(found)


def _run_arguments(argv: list[str], commands: Collection[str]) -> list[str] | None:
    """The arguments of a command line that runs a pipeline (those after `-m app` or `smartcam`), else None."""
    for i, arg in enumerate(argv):
        if (arg == "-m" and argv[i + 1:i + 2] == ["app"]) or Path(arg).name == "smartcam":
            rest = argv[i + 2:] if arg == "-m" else argv[i + 1:]
            runs = not rest or rest[0] == "run" or rest[0] not in (*commands, "-h", "--help", "--version")
            return rest if runs else None
    return None


def _config_of(args: list[str], cwd: Path, default_config: Path) -> Path:
    """The configuration file a run's arguments name, resolved from its working directory `cwd`."""
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            return (cwd / args[i + 1]).resolve()
        if arg.startswith("--config="):
            return (cwd / arg.partition("=")[2]).resolve()
    return default_config.resolve()


def signal_reload(pid: int) -> None:
    """Ask the run `pid` to reload (what ExecReload= does)."""
    os.kill(pid, signal.SIGHUP)
