"""A file of whole lines, appended to and bounded in size: what JSON lines write to, so that neither a power cut,
a full disk nor a year of running leaves a file a reader cannot parse or a card with no room.

- Whole lines only. Each append is one `os.write` loop on an `O_APPEND` descriptor; if it fails part-way (no
  room, an I/O error) the file is cut back to where it ended before, and if even that fails it is closed, so the
  next open repairs it. Opening cuts a tail that is not a whole line (a line a power cut tore, or the NUL bytes
  ext4 leaves where data never reached the disk) back to the last newline, with one warning naming the file.
- Bounded, like logrotate's `size` and `rotate` without copytruncate: when an append would take the file past
  `max_bytes`, `path` is renamed `path.1` (`path.1` → `path.2` …, the one beyond `keep` overwritten), and a new
  `path` begun. The files then never hold more than (`keep` + 1) × `max_bytes`, plus one line.
- Shared. Several writers of one path in this process (cameras with one `jsonl.path`) take turns under one lock,
  and a writer whose `path` was rotated or removed by another opens the new `path` before it appends.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

#: how much of a file's end is read at a time, looking for its last newline
TAIL_CHUNK = 64 * 1024

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    """The one lock of this process's writers of `path`."""
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


def whole_lines_end(fd: int) -> int:
    """The length of the file's part that ends in its last newline (0 when it holds none)."""
    end = os.fstat(fd).st_size
    while end > 0:
        start = max(0, end - TAIL_CHUNK)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


class LineFile:
    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = path.absolute()
        self.max_bytes = max_bytes
        self.keep = keep
        self._fd: int | None = None
        self._lock = _lock_for(self.path)

    def open(self) -> None:
        """Open (creating) `path` now, cutting a torn tail; raises the OSError of a path that cannot be opened."""
        with self._lock:
            self._current()

    def append(self, lines: bytes) -> None:
        """Append whole lines (rotating first when they would take the file past `max_bytes`). On OSError the
        file ends as it did before, and the error is raised."""
        with self._lock:
            fd = self._current()
            size = os.fstat(fd).st_size
            if size and size + len(lines) > self.max_bytes:
                self._rotate()
                fd, size = self._current(), 0
            view = memoryview(lines)
            try:
                while view:
                    view = view[os.write(fd, view):]
            except OSError:
                self._cut_back(fd, size)
                raise

    def close(self) -> None:
        with self._lock:
            self._close()

    def _current(self) -> int:
        """The descriptor of the file `path` names now: opened (and repaired) if not open yet, or if `path` was
        rotated or removed since."""
        if self._fd is not None:
            try:
                on_disk, ours = os.stat(self.path), os.fstat(self._fd)
                if (on_disk.st_dev, on_disk.st_ino) == (ours.st_dev, ours.st_ino):
                    return self._fd
            except FileNotFoundError:
                pass
            self._close()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            self._repair(fd)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return fd

    def _repair(self, fd: int) -> None:
        size, whole = os.fstat(fd).st_size, whole_lines_end(fd)
        if whole < size:
            os.ftruncate(fd, whole)
            log.warning("%s ended in %d bytes that are not a whole line (a power cut?); cut back to its last "
                        "whole line", self.path, size - whole)

    def _cut_back(self, fd: int, size: int) -> None:
        """Undo a write that failed part-way; if that fails too, close, so the next open repairs the tail."""
        try:
            os.ftruncate(fd, size)
        except OSError:
            self._close()

    def _rotate(self) -> None:
        """`path` → `path.1` → … → `path.<keep>` (the oldest overwritten; `path` deleted when `keep` is 0)."""
        self._close()
        for generation in range(self.keep, 0, -1):
            older = self.path if generation == 1 else self._generation(generation - 1)
            if older.exists():
                os.replace(older, self._generation(generation))
        self.path.unlink(missing_ok=True)

    def _generation(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
