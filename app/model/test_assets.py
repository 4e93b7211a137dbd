"""The real models and images the tests run on: where the tests find them, and fetching them where they are not.

Owns the one setting the tests find them by (SMARTCAM_TEST_ASSETS; else ../shared beside the project, where this
project's machines keep them; else the cache that `models pull --tests` fills) and reading the pinned list of their
upstream sources, tests/assets.yaml; fetching and verifying is app/model/fetch.py's, as for the named models. The
list is the tests' alone: the product's manifest names none of these files, so `models pull` without --tests never
fetches them (YOLOv8n among them is AGPL-3.0: test data only, never shipped).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import yaml

from app.config import PROJECT_DIR
from app.errors import ConfigError
from app.model.fetch import FetchError, FileSpec, pull_files

ENV_VAR = "SMARTCAM_TEST_ASSETS"
ASSET_LIST = PROJECT_DIR / "tests" / "assets.yaml"
#: the folders of the list and of the assets folder
FOLDERS = ("models", "images")


def cache_dir() -> Path:
    """Where `models pull --tests` puts them unless SMARTCAM_TEST_ASSETS says: $XDG_CACHE_HOME (~/.cache)/smartcam/
    test-assets."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "smartcam" / "test-assets"


def _from_env() -> Path | None:
    value = os.environ.get(ENV_VAR)
    return Path(value).expanduser() if value else None


def assets_dir() -> Path:
    """The folder the tests read models/ and images/ from: SMARTCAM_TEST_ASSETS, else ../shared when it is there,
    else the cache."""
    shared = PROJECT_DIR.parent / "shared"
    return _from_env() or (shared if shared.is_dir() else cache_dir())


def pull_dir() -> Path:
    """Where `models pull --tests` puts them: SMARTCAM_TEST_ASSETS, else the cache (never ../shared)."""
    return _from_env() or cache_dir()


def listed() -> dict[str, list[FileSpec]]:
    """The pinned list: folder (models, images) -> its files, each with its source and checksums."""
    if not ASSET_LIST.is_file():
        raise ConfigError(f"{ASSET_LIST}: not found: the test assets are listed in the project's tests/")
    document = yaml.safe_load(ASSET_LIST.read_text())
    return {folder: [FileSpec(name, pin.get("url"), pin.get("git_sha1"), pin.get("sha256"), pin.get("pypi"),
                              pin.get("member")) for name, pin in document[folder].items()] for folder in FOLDERS}


def missing(folder: Path) -> list[str]:
    """The listed files that `folder` lacks, as models/NAME and images/NAME."""
    return [f"{sub}/{spec.name}" for sub, specs in listed().items() for spec in specs
            if not (folder / sub / spec.name).is_file()]


def pull_assets(origin: str | None) -> Iterator[str]:
    """Fetch and verify every listed file into pull_dir()'s models/ and images/, from their sources, or from `origin`
    (a folder or a URL holding models/ and images/); raise FetchError listing every failure at the end."""
    failures: list[str] = []
    for sub, specs in listed().items():
        try:
            yield from pull_files(specs, pull_dir() / sub, None if origin is None else f"{origin.rstrip('/')}/{sub}")
        except FetchError as exc:
            failures.append(str(exc))
    if failures:
        raise FetchError("\n".join(failures))
