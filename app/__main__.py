"""`python -m app` and the `smartcam` command: stop signals are taken over first, then the CLI (app/cli.py) runs.

A SIGINT or SIGTERM at any moment, start-up included (imports, loading the model), ends the command quietly with
its summary line and exit 0, never a KeyboardInterrupt traceback: the handlers are installed before anything heavy
is imported. Once the pipeline runs, `app.cli` replaces them with a clean stop of the lanes. A SIGHUP (a reload)
that comes while starting is ignored, rather than ending the process as it would by default: the files are being
read then anyway; once the cameras run, `app.cli` reloads on it.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

from app.errors import Interrupted


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def _ignored(signum: int, frame: FrameType | None) -> None:
    """A reload asked for before there is anything to reload."""


def main(argv: list[str] | None = None) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupted)
    signal.signal(signal.SIGHUP, _ignored)
    try:
        from app.cli import main as cli

        return cli(argv)
    except Interrupted:  # before the pipeline ran (loading the configuration or the model): nothing to count
        print("smartcam: captured 0, processed 0: stopped while starting", file=sys.stderr)
        raise


if __name__ == "__main__":
    sys.exit(main())
