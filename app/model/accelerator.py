"""Which model file runs on which accelerator, and why — the decision `accelerator: auto` makes for the user.

`auto` uses the Edge TPU when its runtime loads and the model has an Edge TPU variant (or is one), and otherwise
the CPU model; the reason goes into one log line. A run that chose the TPU by itself also knows the CPU model to
fall back to if the TPU disappears mid-run, and how fast the TPU should be, to say when it is not.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import logging
import subprocess
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from app.config import PROJECT_DIR
from app.errors import ConfigError, DeviceAbsent
from app.model.manifest import is_path, manifest
from app.names import cpu_name, edgetpu_name
from app.model.runtime import (CORAL_FIX, EDGETPU_LIBRARY, LoadedModel, edgetpu_library_loads, interpreter_api,
                         is_edgetpu_model, load_model)

log = logging.getLogger(__name__)

#: "several times slower than expected" for the slow-link diagnosis
SLOW_FACTOR = 3.0
#: how long an Edge TPU the configuration asks for is waited for, and how often it is tried meanwhile
TPU_WAIT_S = 20.0
TPU_RETRY_S = 2.0
#: the Edge TPU runtime and the interpreter built from the same TensorFlow (install.sh --coral installs them)
MATCHED_PAIR = PROJECT_DIR / "constraints" / "edgetpu.ini"


@dataclass(frozen=True)
class ModelChoice:
    path: Path
    accelerator: str
    reason: str
    #: the CPU model to switch to if the Edge TPU fails mid-run (only when `auto` chose the TPU)
    fallback: Path | None = None
    #: the Edge TPU's expected inference time in ms, when the manifest knows it
    expected_ms: float | None = None


def _variant(ref: str, path: Path, models_dir: Path, to_tpu: bool) -> Path | None:
    """The same model compiled for the other side (Edge TPU or CPU), if its file is present."""
    candidate: Path | None
    if is_path(ref):
        candidate = path.with_name(edgetpu_name(path.name) if to_tpu else cpu_name(path.name))
    else:
        entries = manifest()
        name = entries[ref].edgetpu_variant if to_tpu else cpu_name(ref)
        candidate = models_dir / entries[name].file if name in entries else None
    return candidate if candidate is not None and candidate != path and candidate.is_file() else None


def _expected_ms(tpu_path: Path) -> float | None:
    entry = manifest().get(tpu_path.stem)
    return entry.edgetpu_ms if entry else None


@dataclass(frozen=True)
class MatchedPair:
    library_packages: tuple[str, ...]
    library_version: str
    interpreter_package: str
    interpreter_version: str

    @classmethod
    def read(cls, path: Path = MATCHED_PAIR) -> MatchedPair:
        ini = configparser.ConfigParser(inline_comment_prefixes=("#",))
        ini.read(path)
        return cls(tuple(ini["libedgetpu"]["packages"].split()), ini["libedgetpu"]["version"],
                   ini["interpreter"]["package"], ini["interpreter"]["version"])

    def problem(self, library: tuple[str, str] | None, interpreter: tuple[str, str]) -> str | None:
        """Why the installed (package, version) of libedgetpu and of the interpreter are not this pair, if so.

        A library dpkg does not know (built by hand) cannot be checked and is trusted."""
        if library is None:
            return None
        package, version = library
        if version != self.library_version:
            return (f"{package} {version} is not the Edge TPU runtime matched to the interpreter "
                    f"({self.library_version}; Coral's own 16.0 crashes with TFLite 2.12 and later): {CORAL_FIX}")
        if interpreter != (self.interpreter_package, self.interpreter_version):
            return (f"{package} {version} needs {self.interpreter_package} {self.interpreter_version}, not "
                    f"{' '.join(interpreter)}: {CORAL_FIX}")
        return None


def installed_library(packages: tuple[str, ...]) -> tuple[str, str] | None:
    """(package, version) of the libedgetpu package dpkg has installed, or None."""
    for package in packages:
        try:
            result = subprocess.run(["dpkg-query", "-W", "-f", "${Status} ${Version}", package],
                                    capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        status = result.stdout.split()
        if result.returncode == 0 and status[:3] == ["install", "ok", "installed"] and len(status) == 4:
            return package, status[3]
    return None


@cache
def edgetpu_unavailable() -> str | None:
    """Why the Edge TPU cannot be used here, or None when its runtime is installed and matches the interpreter."""
    if not edgetpu_library_loads():
        return f"no Edge TPU runtime ({EDGETPU_LIBRARY} not found; {CORAL_FIX})"
    pair = MatchedPair.read()
    package = interpreter_api().package
    return pair.problem(installed_library(pair.library_packages), (package, importlib.metadata.version(package)))


def choose(requested: str, ref: str, path: Path, models_dir: Path) -> ModelChoice:
    """The model file and accelerator for `requested` (auto | cpu | edgetpu…) and the model `ref` at `path`."""
    compiled = is_edgetpu_model(path)
    if requested == "cpu":
        return ModelChoice(path, "cpu", "as configured")
    if requested.startswith("edgetpu"):
        mismatch = edgetpu_library_loads() and edgetpu_unavailable()
        if mismatch:  # a mismatched pair crashes inside invoke(): refuse before the camera opens
            raise ConfigError(f"accelerator {requested}: {mismatch}")
        tpu = path if compiled else _variant(ref, path, models_dir, to_tpu=True)
        if tpu is None:
            log.warning("%s has no Edge TPU variant here: the delegate will leave every op to the CPU", path.name)
        return ModelChoice(tpu or path, requested, "as configured", expected_ms=_expected_ms(tpu or path))
    cpu = _variant(ref, path, models_dir, to_tpu=False) if compiled else path
    tpu = path if compiled else _variant(ref, path, models_dir, to_tpu=True)
    unavailable = edgetpu_unavailable()
    if tpu is not None and unavailable is None:
        return ModelChoice(tpu, "edgetpu", f"{tpu.name} on the Edge TPU", cpu, _expected_ms(tpu))
    if cpu is None:  # an Edge TPU model with no CPU variant here: load_model names the fix
        return ModelChoice(path, "cpu", unavailable or "")
    why = unavailable or f"{path.name} has no Edge TPU variant in {models_dir}"
    return ModelChoice(cpu, "cpu", f"{cpu.name} on the CPU: {why}")


#: XNNPACK gains little beyond this many threads on the small models a camera runs
MAX_AUTO_THREADS = 4


def auto_threads(cores: int, outputs_on: bool) -> tuple[int, str]:
    """`threads: auto`: every core on two or fewer (the bench: on 2 cores, 2 threads beat 1 by 1.5x with the
    outputs off and on alike, the capture lane fitting in the gaps); on more, one core left for capture and the
    outputs when any output is on. At most MAX_AUTO_THREADS. Returns the count and why, for the log."""
    keep = 1 if outputs_on and cores >= 3 else 0
    threads = max(1, min(MAX_AUTO_THREADS, cores - keep))
    why = f"{cores} core{'s' if cores > 1 else ''}, outputs {'on' if outputs_on else 'off'}" + (
        ", one core left for them" if keep else "")
    return threads, why


def load_choice(choice: ModelChoice, threads: int) -> tuple[LoadedModel, ModelChoice]:
    """Load the chosen model. When `auto` chose a TPU that does not answer: the CPU model instead. When the
    configuration asks for the TPU itself: wait up to TPU_WAIT_S for it (at boot a USB accelerator answers a few
    seconds late), then DeviceAbsent (exit 1, restarted by systemd)."""
    if choice.fallback is not None:
        try:
            return load_model(choice.path, choice.accelerator, threads), choice
        except (ConfigError, DeviceAbsent) as exc:
            cpu = ModelChoice(choice.fallback, "cpu", f"{choice.fallback.name} on the CPU: {exc}")
            return load_model(cpu.path, "cpu", threads), cpu
    deadline, attempts = time.monotonic() + TPU_WAIT_S, 0
    while True:
        try:
            return load_model(choice.path, choice.accelerator, threads), choice
        except DeviceAbsent as exc:
            attempts += 1
            if time.monotonic() >= deadline:
                raise DeviceAbsent(f"{exc} (waited {TPU_WAIT_S:g} s, {attempts} attempts)") from None
            if attempts == 1:
                log.warning("%s; waiting up to %g s for it", exc, TPU_WAIT_S)
            time.sleep(TPU_RETRY_S)


def slow_tpu_warning(choice: ModelChoice, median_ms: float | None) -> str | None:
    """A warning when the Edge TPU answers but runs several times slower than it should."""
    if choice.accelerator == "cpu" or not choice.expected_ms or median_ms is None:
        return None
    if median_ms < SLOW_FACTOR * choice.expected_ms:
        return None
    return (f"Edge TPU inference takes {median_ms:.1f} ms, {median_ms / choice.expected_ms:.0f}x the expected "
            f"{choice.expected_ms:.1f} ms: a USB 2 port, an unpowered hub or a thermal throttle? Use a USB 3 port "
            "(blue) and a powered hub")
