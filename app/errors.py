"""The user-facing error types and the exit codes they map to.

A user's mistake is one clear line, never a traceback: code raises one of these with the whole message (what is
wrong and the fix) and the CLI prints it and exits with the class's code.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2


class SmartcamError(Exception):
    """A failure the user can act on; `str(error)` is the one line to print."""

    exit_code = EXIT_RUNTIME


class ConfigError(SmartcamError):
    """Bad usage or configuration: unknown key, wrong type, missing file, model that does not fit the accelerator.

    Holds one message per problem so `validate` can list them all.
    """

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ModelError(SmartcamError):
    """A model file that exists but cannot be loaded or run (unresolved op, corrupt flatbuffer)."""


class DeviceAbsent(SmartcamError):
    """A device the configuration asks for that does not answer (yet): an Edge TPU at boot. Not the files' fault,
    so exit 1, which systemd restarts."""


class SourceError(SmartcamError):
    """A source that cannot be opened (and, for finite sources, will not be retried)."""


class Interrupted(SystemExit):
    """A stop signal (SIGINT, SIGTERM) that arrived before the pipeline could take it: exit 0, quietly."""

    def __init__(self) -> None:
        super().__init__(EXIT_OK)
