"""The checksums files are pinned by: git blob SHA-1 and sha256.

Its own module because both the manifest (which named model a file is) and fetching (is a download the pinned
file) need them; with the function here the dependency runs one way, fetch -> manifest -> digest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 16


def digests(path: Path) -> dict[str, str]:
    """The checksums the manifest uses: git blob SHA-1 (sha1 of `blob <size>\\0` + data) and sha256."""
    git, sha256 = hashlib.sha1(f"blob {path.stat().st_size}\0".encode()), hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            git.update(chunk)
            sha256.update(chunk)
    return {"git_sha1": git.hexdigest(), "sha256": sha256.hexdigest()}
