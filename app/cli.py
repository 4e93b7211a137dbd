"""The command line: run (default) · validate · list · models · devices · bench · reload · mqtt · teach · search
(app/__main__.py).

`python -m app --pipeline detect` runs a pipeline; the other commands inspect the configuration. Exit codes:
0 done, 2 bad usage or configuration, 1 failure at run time. A user's mistake is one line (`--debug` adds the
traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from app import __version__
from app.config import (DEFAULT_CONFIG, PIPELINE_KEYS, PIPELINES_DIR, load_cameras, load_device, load_settings,
                        pipeline_names)
from app.errors import EXIT_OK, EXIT_RUNTIME, ConfigError, SmartcamError

if TYPE_CHECKING:
    from app.cameras import Cameras
    from app.config import Settings
    from app.metrics import Stats
    from app.reload import Reloader

log = logging.getLogger("app")
COMMANDS = ("run", "validate", "list", "models", "devices", "bench", "reload", "mqtt", "teach", "search")
#: the length of the clip `bench --clip-from` makes (20 s at 30 fps), looped for longer runs
CLIP_FRAMES = 600


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="PATH",
                        help=f"device configuration (default {DEFAULT_CONFIG.name})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override any key: camera.source=/dev/video1, stages.inference.threads=2 (repeatable)")
    parser.add_argument("--debug", action="store_true", help="debug logging and tracebacks for errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app", description="smartcam: a camera, a TFLite model and results, configured in YAML.",
        epilog="Commands: run (the default) · validate · list · models · devices · bench · reload · mqtt · teach · "
               "search. "
               "`python -m app COMMAND --help` for each.")
    parser.add_argument("--version", action="version", version=f"smartcam {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_run, _add_validate, _add_models, _add_bench, _add_reload, _add_mqtt, _add_teach, _add_search):
        add(commands)
    return parser


def _add_run(commands: argparse._SubParsersAction) -> None:
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


def _add_validate(commands: argparse._SubParsersAction) -> None:
    validate = commands.add_parser("validate", help="check config.yaml and a pipeline file",
                                   description="Exit 0 and print ok, or exit 2 with one line per problem. With "
                                               "--pipeline, --model or several cameras, the model each run uses "
                                               "must be there, as the run checks at start.")
    validate.add_argument("--pipeline", default=None, metavar="NAME", help="one pipeline (default: all of them)")
    validate.add_argument("--model", metavar="PATH|NAME", help="overrides stages.inference.model, as run's")
    validate.add_argument("--labels", metavar="PATH", help="overrides stages.inference.labels, as run's")
    _common(validate)
    validate.set_defaults(handler=command_validate, source=None, output=[])

    listing = commands.add_parser("list", help="the pipelines and the named models",
                                  description="The pipelines with their descriptions; the named models and "
                                              "whether each is downloaded.")
    _common(listing)
    listing.set_defaults(handler=command_list)
    devices = commands.add_parser("devices", help="the cameras and Edge TPUs this board has",
                                  description="V4L2 cameras, Pi cameras (when picamera2 is installed) and Coral "
                                              "Edge TPUs (USB and PCIe), with what to write in config.yaml.")
    devices.add_argument("--debug", action="store_true", help="debug logging and tracebacks for errors")
    devices.set_defaults(handler=command_devices)


def _add_models(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="fetch, list and verify the named models",
                                 description="Named models are listed in models/manifest.yaml and stored in "
                                             "models.dir (config.yaml).")
    actions = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    pull = actions.add_parser("pull", help="download and verify models",
                              description="Download (or copy from --from), verify the checksums, move into place "
                                          "atomically. A mismatch is refused and the existing file kept.")
    pull.add_argument("names", nargs="*", metavar="NAME",
                      help="manifest names, or all (default: the models the shipped pipelines use)")
    pull.add_argument("--from", dest="origin", metavar="DIR|URL",
                      help="an offline folder or a mirror URL holding the files under their names")
    pull.add_argument("--tests", action="store_true",
                      help="instead, the models and images the tests use (tests/assets.yaml; --from then holds models/ "
                           "and images/) into $SMARTCAM_TEST_ASSETS, default ~/.cache/smartcam/test-assets; "
                           "YOLOv8n among them is AGPL-3.0, for tests only")
    _common(pull)
    pull.set_defaults(handler=command_models_pull)
    models_list = actions.add_parser("list", help="the named models and whether each is present")
    _common(models_list)
    models_list.set_defaults(handler=command_models_list)
    models_verify = actions.add_parser("verify", help="check the present models against their checksums")
    _common(models_verify)
    models_verify.set_defaults(handler=command_models_verify)


def _add_bench(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench", help="compare invoke alone, the examples' loop and the pipeline, outputs off and on",
        description="Measures, on one model, source and thread count, alternated and repeated, each run in its own "
                    "process: limit (invoke alone), loop (the examples' one-thread loop) and pipeline (the three "
                    "lanes), with the outputs off and on. Prints a Markdown table of medians and ratios.")
    bench.add_argument("--pipeline", default="detect", metavar="NAME", help="the pipeline to measure")
    bench.add_argument("--source", default="pattern", metavar="SRC",
                       help="frames to use: a clip, a camera, ... (default: the synthetic pattern, unpaced)")
    bench.add_argument("--clip-from", metavar="IMAGE", help="make a clip (a pan and zoom over IMAGE, at its size, "
                       f"{CLIP_FRAMES} frames, looped) and use it as the source")
    bench.add_argument("--model", metavar="PATH|NAME", help="overrides stages.inference.model")
    bench.add_argument("--labels", metavar="PATH", help="overrides stages.inference.labels")
    bench.add_argument("--threads", default="1,2", metavar="N,N", help="thread counts to compare (default 1,2)")
    bench.add_argument("--frames", type=int, default=600, metavar="N",
                       help="results per run (default 600); captured frames for gated")
    bench.add_argument("--repeat", type=int, default=3, metavar="N", help="repetitions of every run (default 3)")
    bench.add_argument("--modes", default="limit,loop,pipeline", metavar="M,M",
                       help="which of limit, loop, pipeline, gated, robot, clips to run (default "
                       "limit,loop,pipeline; pipeline runs with motion gating off, gated with it on, robot with UDP "
                       "and ZeroMQ clients timing their receipt, clips with event clips on)")
    bench.add_argument("--outputs", default="off,on", metavar="off,on",
                       help="outputs off, on or both (default both): overlay, JSON lines, snapshots, one MJPEG viewer")
    bench.add_argument("--live-fps", type=float, metavar="F",
                       help="pace the source like a camera at F fps: a reader that falls behind gets the newest frame")
    bench.add_argument("--json", metavar="PATH", help="also write every run and the table as JSON")
    bench.add_argument("--plot", metavar="PNG", help="also plot fps, CPU per frame and latency over time "
                       "(needs matplotlib)")
    _common(bench)
    bench.set_defaults(handler=command_bench, output=[])


def _add_reload(commands: argparse._SubParsersAction) -> None:
    reload = commands.add_parser(
        "reload", help="apply changed files to the running cameras, without a restart",
        description="Check the files as validate does (exit 2 with one line per problem, and nothing is sent), then "
                    "ask every smartcam run on this machine to read them again (SIGHUP; under systemd, systemctl "
                    "reload smartcam does the same). Zones, lines, thresholds and outputs change live; a camera "
                    "whose source or model changed restarts alone.")
    reload.add_argument("--pipeline", default="detect", metavar="NAME", help="the pipeline the run uses (checked)")
    _common(reload)
    reload.set_defaults(handler=command_reload)


def _add_mqtt(commands: argparse._SubParsersAction) -> None:
    mqtt = commands.add_parser("mqtt", help="the MQTT broker's side").add_subparsers(dest="action", metavar="ACTION",
                                                                                     required=True)
    clean = mqtt.add_parser(
        "clean", help="remove retained topics of cameras and pipelines no longer configured",
        description="Remove from the configured broker the retained state and Home Assistant discovery of cameras and "
                    "pipelines that are no longer configured (one line per instance found: removed or kept, and "
                    "why). Instances online now, and those another board publishes, are kept.")
    clean.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    _common(clean)
    clean.set_defaults(handler=command_mqtt_clean)


def _add_teach(commands: argparse._SubParsersAction) -> None:
    teach = commands.add_parser("teach", help="teach names, and what a detection is not, from photos or clips")
    actions = teach.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="teach NAME from FILEs (or, --not, that their LABEL is not one)",
                             description="The pipeline's detector finds the best LABEL in each photo or clip (the "
                                         "whole image without a detector); its crop's embedding is stored.")
    add.add_argument("items", nargs="+", metavar="NAME FILE", help="the name, then the files (with --not: files)")
    add.add_argument("--not", dest="negative", action="store_true", help="the files' LABEL is not one")
    add.add_argument("--label", required=True, metavar="L", help="the detector's label of the object")
    _detector_options(add)
    add.set_defaults(handler=command_teach_add, source=None, output=[])
    teach_list = actions.add_parser("list", help="the taught names")
    teach_list.set_defaults(handler=command_teach_list)
    remove = actions.add_parser("remove", help="forget a taught name (not:LABEL for --not examples)")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(handler=command_teach_remove)
    for parser in (add, teach_list, remove):
        parser.add_argument("--gallery", metavar="PATH",
                            help="the gallery file: teach.gallery (default: teach.json in models.dir)")
        _common(parser)


def _detector_options(parser: argparse.ArgumentParser) -> None:
    """The pipeline whose detector and embedder `teach add` and `search` use."""
    parser.add_argument("--pipeline", default="detect", metavar="NAME", help="whose detector and embedder")
    parser.add_argument("--model", metavar="PATH|NAME", help="overrides stages.inference.model")
    parser.add_argument("--labels", metavar="PATH", help="overrides stages.inference.labels")


def _add_search(commands: argparse._SubParsersAction) -> None:
    search = commands.add_parser("search", help="the recent tracks most like an object in a photo",
                                 description="Embeds the best LABEL in IMAGE (the whole image without --label), as "
                                             "teach add does, and lists the most similar tracks the crop stage kept "
                                             "as they ended, by cosine.")
    search.add_argument("image", metavar="IMAGE")
    search.add_argument("--label", metavar="L", help="the detector's label of the object (default: the whole image)")
    search.add_argument("--top", type=int, default=5, metavar="K", help="how many tracks (default 5)")
    _detector_options(search)
    search.add_argument("--gallery", metavar="PATH", help="the recent tracks are beside this gallery: teach.gallery "
                        "(default: teach.json in models.dir)")
    search.set_defaults(handler=command_search, source=None, output=[])
    _common(search)


def command_search(args: argparse.Namespace) -> int:
    from app.teach.commands import search

    if args.top < 1:
        raise ConfigError(f"search --top {args.top}: give at least 1")
    settings = load_settings(args.pipeline, args.config, _run_overrides(args) + _gallery_override(args))
    print("\n".join(search(settings, args.image, args.label, args.top)))
    return EXIT_OK


def _gallery_override(args: argparse.Namespace) -> list[str]:
    """`--gallery G` as `--set teach.gallery=G`, so the run's crop stage and the command read the same file."""
    return [] if args.gallery is None else [f"teach.gallery={_quoted(args.gallery)}"]


def command_teach_add(args: argparse.Namespace) -> int:
    from app.teach.commands import add

    if args.negative:
        name, files = None, args.items
    elif len(args.items) < 2:
        raise ConfigError("teach add: give a NAME and at least one FILE (or --not FILE...)")
    else:
        name, files = args.items[0], args.items[1:]
    settings = load_settings(args.pipeline, args.config, _run_overrides(args) + _gallery_override(args))
    print("\n".join(add(settings, name, files, args.label)))
    return EXIT_OK


def command_teach_list(args: argparse.Namespace) -> int:
    from app.teach.commands import listing

    print("\n".join(listing(load_device(args.config, args.overrides + _gallery_override(args)))))
    return EXIT_OK


def command_teach_remove(args: argparse.Namespace) -> int:
    from app.teach.commands import remove

    print("\n".join(remove(load_device(args.config, args.overrides + _gallery_override(args)), args.name)))
    return EXIT_OK


def command_mqtt_clean(args: argparse.Namespace) -> int:
    from app.outputs.mqtt.clean import clean

    settings = load_device(args.config, args.overrides)
    device = settings.device
    cameras = [entry.name for entry in device.cameras] or [device.camera.name]
    for line in clean(device.mqtt, cameras, pipeline_names(), args.dry_run,
                      lambda path: str(settings.resolve_path(path)) if path else None):
        print(line)
    return EXIT_OK


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
    from app.cameras import Cameras
    from app.outputs import build_publishers
    from app.service import ServiceMonitor

    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames: must be at least 1")
    runs = load_cameras(args.pipeline, args.config, _run_overrides(args))
    _configure_logging(runs[0].device.logging.level, args.debug)
    for warning in runs[0].warnings:
        log.warning("%s", warning)
    cameras = Cameras(runs, build_publishers)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: cameras.stop())
    reloader = _reloader(args, cameras)
    monitor = ServiceMonitor(*cameras.stats)  # READY, WATCHDOG and STATUS under systemd; silent elsewhere
    monitor.start()
    try:
        cameras.run(args.max_frames)
    finally:
        reloader.stop()
        monitor.stop()
        for settings, stats in zip(runs, cameras.stats, strict=True):  # at every log level, even after a failure
            print(f"smartcam: {_camera_summary(settings.device.camera.name, stats) if len(runs) > 1 else ''}"
                  f"{stats.summary()}", file=sys.stderr)
    return EXIT_OK


def _reloader(args: argparse.Namespace, cameras: Cameras) -> Reloader:
    """Reload on SIGHUP: the files read again as at the start, applied to the cameras (and the log level)."""
    from app.reload import Reloader

    def apply(runs: list[Settings]) -> str:
        done = cameras.reload(runs)
        _configure_logging(runs[0].device.logging.level, args.debug)
        return done

    reloader = Reloader(lambda: load_cameras(args.pipeline, args.config, _run_overrides(args)), apply)
    for stats in cameras.stats:
        stats.reports["reload"] = reloader.document
    signal.signal(signal.SIGHUP, lambda *_: reloader.request())
    reloader.start()
    return reloader


def command_reload(args: argparse.Namespace) -> int:
    from app.reload import running_runs, signal_reload

    load_cameras(args.pipeline, args.config, args.overrides)  # what the run will refuse, refused here first
    config = Path(args.config) if args.config else DEFAULT_CONFIG
    runs = running_runs(COMMANDS, config, DEFAULT_CONFIG)
    if not runs:
        raise SmartcamError(f"no smartcam run on {config} to reload on this machine (start one with python -m app "
                            "run, or name its configuration with --config)")
    for pid, command in runs:
        try:
            signal_reload(pid)
        except PermissionError:
            raise SmartcamError(f"not allowed to signal {pid} ({command}): run reload as its user or root, or use "
                                "systemctl reload smartcam") from None
        print(f"reload: asked {pid} ({command})")
    return EXIT_OK


def _camera_summary(name: str, stats: Stats) -> str:
    """The start of one camera's summary line in a run of several: its name and, if it failed, how."""
    from app.metrics import FAILED

    if stats.state == FAILED:
        return f"{name}: failed: {stats.last_failure}; "
    if stats.failures:
        return f"{name}: rebuilt after {stats.failures} failures (the last: {stats.last_failure}); "
    return f"{name}: "


def command_validate(args: argparse.Namespace) -> int:
    from app.model.fit import validate_fit
    from app.sources import source_warnings

    names = [args.pipeline] if args.pipeline else pipeline_names()
    overrides = _run_overrides(args)
    problems: list[str] = []
    warnings: list[str] = []
    for name in names:
        try:
            settings = load_settings(name, args.config, overrides)
            warnings += [w for w in (*settings.warnings, *validate_fit(settings)) if w not in warnings]
        except ConfigError as exc:
            problems += [p for p in exc.problems if p not in problems]
    ports: list[str] = []
    try:  # the cameras: of config.yaml, each with its pipeline and its source
        runs = load_cameras(args.pipeline or "detect", args.config, overrides)
        named = args.pipeline is not None or args.model is not None or len(runs) > 1  # else: files alone
        for settings in runs:
            problems += [p for p in (_missing_model(settings) if named else []) if p not in problems]
            found = [*validate_fit(settings), *source_warnings(settings.device.camera)]
            warnings += [w for w in found if w not in warnings]
        ports = _camera_ports(runs)
    except ConfigError as exc:
        problems += [p for p in exc.problems if p not in problems]
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if problems:
        raise ConfigError(problems)
    for line in ports:
        print(line)
    print("ok")
    return EXIT_OK


def _missing_model(settings: Settings) -> list[str]:
    """The run's model files not there, or its named models not downloaded (with the command that fetches each):
    the lines the run refuses to start with."""
    from app.model.manifest import resolve_model

    problems = []
    for model in settings.pipeline.models:
        try:
            resolve_model(model, settings.models_dir, settings.config_path)
        except ConfigError as exc:
            problems += exc.problems
    return problems


def _camera_ports(runs: list[Settings]) -> list[str]:
    """Several cameras with HTTP on: the port each one's page listens on (its own, or derived from its name)."""
    if len(runs) < 2 or not runs[0].device.http.enabled:
        return []
    return [f"camera {settings.device.camera.name}: http port {settings.device.http.port}" for settings in runs]


def command_list(args: argparse.Namespace) -> int:
    print("pipelines:")
    for name in pipeline_names():
        pipeline = load_settings(name, args.config, args.overrides).pipeline
        print(f"  {name:<12} {pipeline.description}  (model: {pipeline.inference.model})")
    return command_models_list(args)


def command_models_list(args: argparse.Namespace) -> int:
    from app.model.manifest import manifest, pull_command

    device_overrides = [o for o in args.overrides if o.partition(".")[0] not in PIPELINE_KEYS]
    settings = load_device(args.config, device_overrides)
    models_dir = settings.models_dir
    print(f"models (in {models_dir}):")
    for name, entry in manifest().items():
        present = ("present" if (models_dir / entry.file).is_file()
                   else f"missing: {pull_command(name, settings.config_path)}")
        print(f"  {name:<50} {entry.kind:<12} {present}")
    return EXIT_OK


def _pipeline_models() -> list[str]:
    """The named models the shipped pipelines use."""
    from app.model.manifest import is_path

    models = (load_settings(name).pipeline.inference.model for name in pipeline_names())
    return sorted({m for m in models if not is_path(m)})


def command_models_pull(args: argparse.Namespace) -> int:
    from app.model.fetch import entries_named, pull

    if args.tests:
        return _pull_test_assets(args)
    models_dir = load_device(args.config, args.overrides).models_dir
    for line in pull(entries_named(args.names, _pipeline_models()), models_dir, args.origin):
        print(line)
    return EXIT_OK


def _pull_test_assets(args: argparse.Namespace) -> int:
    """`models pull --tests`: the tests' own models and images (app/model/test_assets.py), never the product's."""
    from app.model.test_assets import pull_assets, pull_dir

    if args.names:
        raise ConfigError("models pull --tests takes no model names: it fetches every file tests/assets.yaml lists")
    for line in pull_assets(args.origin):
        print(line)
    print(f"the test models and images are in {pull_dir()}")
    return EXIT_OK


def command_models_verify(args: argparse.Namespace) -> int:
    from app.model.fetch import FetchError, entries_named, verify
    from app.model.manifest import pull_command

    settings = load_device(args.config, args.overrides)
    models_dir = settings.models_dir
    bad = []
    for name, problem in verify(entries_named(["all"], []), models_dir):
        print(f"{name}: {problem or 'ok'}")
        if problem:
            bad.append(f"{name}: {problem} ({pull_command(name, settings.config_path)} replaces it)")
    if bad:
        raise FetchError("\n".join(bad))
    return EXIT_OK


def _listed(flag: str, text: str, choices: dict[str, object]) -> list:
    """`--flag a,b` as the choices' values, or the one line that says what is allowed."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in choices]
    if unknown or not names:
        raise ConfigError(f"--{flag} {text}: expected some of {','.join(choices)}")
    return [choices[name] for name in names]


def command_bench(args: argparse.Namespace) -> int:
    import platform
    import tempfile
    from pathlib import Path

    from app.bench.child import MODES, RunSpec
    from app.bench.clip import make_clip
    from app.bench.report import plot, summarise, table, write_json
    from app.bench.runs import plan, run
    from app.redact import mask_credentials

    try:
        threads = [int(n) for n in args.threads.split(",")]
    except ValueError:
        raise ConfigError(f"--threads {args.threads}: expected counts like 1,2,4") from None
    if any(n < 1 for n in threads) or args.frames < 2 or args.repeat < 1:
        raise ConfigError("--threads, --frames and --repeat: threads at least 1, frames at least 2, repeat at least 1")
    modes = _listed("modes", args.modes, {m: m for m in MODES})
    outputs = _listed("outputs", args.outputs, {"off": False, "on": True})
    _configure_logging("warning", args.debug)
    with tempfile.TemporaryDirectory(prefix="smartcam-bench-") as workdir:
        if args.clip_from:
            args.source = str(make_clip(Path(args.clip_from), Path(workdir) / "clip.mp4", CLIP_FRAMES))
        overrides = [*_run_overrides(args), "camera.loop=true"]
        if args.source == "pattern":
            overrides.append("camera.fps=1000")
        settings = load_settings(args.pipeline, args.config, overrides)  # a mistake is one line, before any run
        template = RunSpec("limit", False, 0, args.frames, args.pipeline, args.config, overrides, args.live_fps, 0.0)
        runs = []
        for spec in plan(modes, outputs, threads, args.repeat, template):
            runs.append(run(spec))
            print(f"bench: {spec.mode} outputs {'on' if spec.outputs else 'off'}, {spec.threads} threads: "
                  f"{runs[-1]['fps']:.1f} fps", file=sys.stderr)
    rows = summarise(runs)
    print(table(rows))
    conditions = {"pipeline": args.pipeline, "model": settings.pipeline.inference.model,
                  "source": args.clip_from and f"clip from {args.clip_from}" or mask_credentials(args.source),
                  "frames": args.frames, "repeat": args.repeat, "live_fps": args.live_fps,
                  "machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()}
    if args.json:
        write_json(Path(args.json), conditions, runs, rows)
    if args.plot:
        plot(Path(args.plot), runs, rows)
    return EXIT_OK


def command_devices(args: argparse.Namespace) -> int:
    from app.model.accelerator import edgetpu_unavailable
    from app.devices import edgetpus, v4l2_cameras
    from app.sources import picamera2_cameras

    print("cameras:")
    pi_cameras = [f"  picamera2    {info.get('Model', '?')} ({info.get('Id', '')})" for info in picamera2_cameras()]
    v4l2 = [f"  {d.path:<12} {d.name}" for d in v4l2_cameras()]
    print("\n".join(pi_cameras + v4l2) or "  none (camera.source: pattern or a file needs no camera)")
    print("edge tpus:")
    print("\n".join(f"  {d.path:<14} {d.name}" for d in edgetpus()) or "  none")
    print(f"edge tpu runtime: {edgetpu_unavailable() or 'installed'}")
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
    except BrokenPipeError:  # the reader of --output jsonl:- went away (`| head`): done, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # a file, device or socket failed at run time
        if args.debug:
            log.exception("failed")
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return EXIT_OK
