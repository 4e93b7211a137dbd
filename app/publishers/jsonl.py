"""JSON lines: one line per processed frame, in the one result shape, to standard output or a file.

For scripts and robots that read a stream of results; a file is appended to, so restarts keep history.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from app.errors import ConfigError
from app.publishers.base import Output, Publisher


class JsonLines(Publisher):
    def __init__(self, path: str) -> None:
        self._own = path != "-"
        try:
            self._out: TextIO = open(Path(path), "a", buffering=1, encoding="utf-8") if self._own else sys.stdout
        except OSError as exc:
            raise ConfigError(f"jsonl.path: cannot open {path} for writing ({exc.strerror})") from None

    def publish(self, out: Output) -> None:
        self._out.write(json.dumps(out.result, separators=(",", ":")) + "\n")
        self._out.flush()

    def close(self) -> None:
        if self._own:
            self._out.close()
        else:
            self._out.flush()
