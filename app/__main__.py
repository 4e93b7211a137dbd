"""The command line: run (default) · validate · list.

`python -m app --pipeline detect` runs a pipeline; the other commands inspect the configuration. Exit codes:
0 done, 2 bad usage or configuration, 1 failure at run time. A user's mistake is one line (`--debug` adds the
traceback).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable

from app import __version__
from app.config import DEFAULT_CONFIG, PIPELINES_DIR, load_settings, pipeline_names
from app.errors import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, ConfigError, SmartcamError

log = logging.getLogger("app")
COMMANDS = ("run", "validate", "list")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="PATH", help=f"device configuration (default {DEFAULT_CONFIG.name})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override any key: camera.source=/dev/video1, stages.inference.threads=2 (repeatable)")
    parser.add_argument("--debug", action="store_true", help="debug logging and tracebacks for errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app", description="smartcam: a camera, a TFLite model and results, configured in YAML.",
        epilog="Commands: run (the default) · validate · list. `python -m app COMMAND --help` for each.")
    parser.add_argument("--version", action="version", version=f"smartcam {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run a pipeline (the default command)",
                              description="Capture frames, run the pipeline, publish results until stopped.")
    run.add_argument("--pipeline", default="detect", metavar="NAME",
                     help=f"a pipeline in {PIPELINES_DIR.name}/ ({', '.join(pipeline_names())}) or a path to one")
    run.add_argument("--source", metavar="SRC", help="overrides camera.source: /dev/video0, rtsp://…, clip.mp4, "
                     "photos/, 'shots/*.jpg', pattern, picamera2, auto")
    run.add_argument("--model", metavar="PATH|NAME", help="overrides stages.inference.model")
    run.add_argument("--labels", metavar="PATH", help="overrides stages.inference.labels")
    run.add_argument("--max-frames", type=int, metavar="N", help="stop after N processed frames")
    run.add_argument("--output", action="append", default=[], metavar="jsonl:PATH|jsonl:-",
                     help="write JSON lines to a file or standard output (-)")
    _common(run)
    run.set_defaults(handler=command_run)

    validate = commands.add_parser("validate", help="check config.yaml and a pipeline file",
                                   description="Exit 0 and print ok, or exit 2 with one line per problem.")
    validate.add_argument("--pipeline", default=None, metavar="NAME", help="one pipeline (default: all of them)")
    _common(validate)
    validate.set_defaults(handler=command_validate)

    listing = commands.add_parser("list", help="the pipelines and the named models",
                                  description="The pipelines with their descriptions; the named models and "
                                              "whether each is downloaded.")
    _common(listing)
    listing.set_defaults(handler=command_list)
    return parser


def _run_overrides(args: argparse.Namespace) -> list[str]:
    """The run shorthands (`--source`, `--model`, `--labels`, `--output`) as `--set` overrides."""
    overrides = []
    for flag, key in (("source", "camera.source"), ("model", "stages.inference.model"),
                      ("labels", "stages.inference.labels")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={_quoted(value)}")
    for output in args.output:
        kind, _, path = output.partition(":")
        if kind != "jsonl" or not path:
            raise ConfigError(f"--output {output}: expected jsonl:PATH or jsonl:- (standard output)")
        overrides += ["jsonl.enabled=true", f"jsonl.path={_quoted(path)}"]
    return overrides + args.overrides


def _quoted(value: str) -> str:
    """A YAML string literal, so `--source 0` stays the string "0" and paths keep their characters."""
    return "'" + value.replace("'", "''") + "'"


def command_run(args: argparse.Namespace) -> int:
    from app.pipeline import Pipeline
    from app.publishers.jsonl import JsonLines

    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames: must be at least 1")
    settings = load_settings(args.pipeline, args.config, _run_overrides(args))
    _configure_logging(settings.device.logging.level, args.debug)
    publishers = [JsonLines(settings.device.jsonl.path)] if settings.device.jsonl.enabled else []
    pipeline = Pipeline(settings, publishers)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: pipeline.stop())
    stats = pipeline.run(args.max_frames)
    log.info("%s", stats.summary())
    return EXIT_OK


def command_validate(args: argparse.Namespace) -> int:
    names = [args.pipeline] if args.pipeline else pipeline_names()
    problems: list[str] = []
    for name in names:
        try:
            load_settings(name, args.config, args.overrides)
        except ConfigError as exc:
            problems += [p for p in exc.problems if p not in problems]
    if problems:
        raise ConfigError(problems)
    print("ok")
    return EXIT_OK


def command_list(args: argparse.Namespace) -> int:
    from app.models import manifest

    settings = load_settings(pipeline_names()[0], args.config, args.overrides)
    print("pipelines:")
    for name in pipeline_names():
        pipeline = load_settings(name, args.config, args.overrides).pipeline
        print(f"  {name:<12} {pipeline.description}  (model: {pipeline.params('inference').model})")
    models_dir = settings.resolve_path(settings.device.models.dir)
    print(f"models (in {models_dir}):")
    for name, entry in manifest().items():
        present = "present" if (models_dir / entry.file).is_file() else f"missing: python -m app models pull {name}"
        print(f"  {name:<50} {entry.kind:<12} {present}")
    return EXIT_OK


def _configure_logging(level: str, debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "run")
    args = build_parser().parse_args(argv)
    _configure_logging("info", args.debug)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except SmartcamError as exc:
        if args.debug:
            log.exception("failed")
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
