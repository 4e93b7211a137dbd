"""Every `models pull` a user is told to run names the venv's Python (or the absolute path of the one running):
Debian has no `python` command, so a bare `python -m app models pull` fails as typed."""

from __future__ import annotations

import re
import sys

import pytest

from app.model.fetch import FetchError, entries_named, pull
from conftest import PROJECT

#: `python -m app models pull` or `python3 -m …` not preceded by a path (.venv/bin/, /opt/…/bin/)
BARE = re.compile(r"(?<![/\w.-])python3? -m app models pull")


def test_a_failed_download_tells_the_offline_pull_with_this_python(tmp_path):
    with pytest.raises(FetchError) as failed:  # nothing listens on port 1
        list(pull(entries_named(["face_detection_short_range"], []), tmp_path, "http://127.0.0.1:1"))
    assert f"pull from a folder: {sys.executable} -m app models pull NAME --from DIR" in str(failed.value)


def test_no_hint_in_the_app_or_the_installer_says_a_bare_python():
    sources = [*sorted((PROJECT / "app").rglob("*.py")), PROJECT / "install.sh"]
    found = [f"{path.relative_to(PROJECT)}:{number}: {line.strip()}" for path in sources
             for number, line in enumerate(path.read_text().splitlines(), 1) if BARE.search(line)]
    assert found == []
