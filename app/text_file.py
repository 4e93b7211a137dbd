"""Reading a small text file a user names (a config file, a label file): a regular file, of bounded size, in UTF-8,
or one line that says what is wrong with it.

A path may name anything: a FIFO (reading it waits for a writer that never comes), `/dev/zero` (an endless read
that grows until memory runs out), a directory, a binary file. Each is refused here before a byte is read, so no
configured path can hang the service or take the board's memory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from app.errors import ConfigError


def read_text(path: Path, what: str, max_bytes: int) -> str:
    """The file's text, or ConfigError naming `path` and `what` it was meant to be (`labels`, `a configuration
    file`): not there, not a regular file, larger than `max_bytes`, unreadable or not UTF-8."""
    try:
        mode = os.stat(path).st_mode  # stat never blocks, unlike opening a FIFO
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{path} is {_kind(mode)}, not a regular file: give {what} as a plain file")
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise ConfigError(f"{path}: larger than {max_bytes // 1024} KiB: not {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8") \
            from None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "something else"
