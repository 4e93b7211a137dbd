"""Shared test helpers: where the real models and images are, how to run the stages on one image, and the toolkit
the test modules share (polling, `python -m app` and its one error line, a pipeline in the background, a collecting
publisher, a fake camera, pipeline-file builders, a real MQTT broker and subscriber). Test modules import from here
and never from each other."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
import yaml

from app.bench.clip import make_clip
from app.config import CameraConfig, PostprocessParams, PreprocessParams, Settings, load_settings
from app.scene.label_events import Event
from app.frame import Frame
from app.model.manifest import Labels, read_labels
from app.model.test_assets import ENV_VAR, assets_dir, missing
from app.pipeline import Pipeline
from app.outputs.base import Output, Publisher
from app.outputs.http import HttpPublisher
from app.model.runtime import load_model
from app.sources.base import Captured, EndOfStream, Source
from app.sources.opencv import V4L2Source
from app.stages.base import StageContext
from app.stages.inference import Inference
from app.stages.postprocess import Postprocess
from app.stages.preprocess import Preprocess
from app.scene.tracker import ObjectEvent

PROJECT = Path(__file__).resolve().parents[1]
#: the real models (models/) and images (images/): $SMARTCAM_TEST_ASSETS, else ../shared, else the cache that
#: `python -m app models pull --tests` fills (app/model/test_assets.py)
SHARED = assets_dir()
MODELS = SHARED / "models"
IMAGES = SHARED / "images"
T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    """Without the real models and images no test runs: one line says how to get them (not a collection error per
    module that reads one)."""
    absent = missing(SHARED)
    if absent:
        more = f" and {len(absent) - 1} more" if len(absent) > 1 else ""
        pytest.exit(f"the test models and images are not in {SHARED} ({absent[0]}{more} missing): fetch them with "
                    f"`python -m app models pull --tests`, or set {ENV_VAR} to a folder holding them (README, Tests)",
                    returncode=pytest.ExitCode.USAGE_ERROR)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def imread(path: str | Path) -> np.ndarray:
    """The picture at `path` as OpenCV reads it (BGR); fails naming the file when it cannot be read."""
    image = cv2.imread(str(path))
    assert image is not None, f"cannot read {path}"
    return image


def decode_jpeg(data: bytes) -> np.ndarray:
    """A JPEG's pixels (BGR); fails when the bytes are not a JPEG OpenCV can decode."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, f"not a decodable JPEG: {data[:16]!r}"
    return image


def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)

    def area(r) -> float:
        return (r[2] - r[0]) * (r[3] - r[1])

    return inter / (area(a) + area(b) - inter)


def run_model(model: str, image: str | np.ndarray, labels: Labels | str | None = None,
              preprocess: dict | None = None, postprocess: dict | None = None, accelerator: str = "cpu") -> Frame:
    """preprocess → inference → postprocess on one image with a real model from shared/models."""
    loaded = load_model(MODELS / model, accelerator, 2)
    if isinstance(labels, str):
        labels = read_labels(MODELS / labels)
    ctx = StageContext(loaded, labels or Labels())
    stages = [Preprocess(PreprocessParams(**(preprocess or {}))), Inference(None),
              Postprocess(PostprocessParams(**(postprocess or {})))]
    for stage in stages:
        stage.start(ctx)
    frame = Frame(imread(IMAGES / image) if isinstance(image, str) else image, 1, "test")
    for stage in stages:
        processed = stage.process(frame)
        assert processed is not None, f"{stage.name} dropped the frame"
        frame = processed
    return frame


@pytest.fixture(scope="session")
def cat_clip(tmp_path_factory) -> Path:
    """A 3-second 720p clip panning and zooming over cat_720p.jpg, made at run time (no media is committed)."""
    return make_clip(IMAGES / "cat_720p.jpg", tmp_path_factory.mktemp("clips") / "cat_pan.mp4", frames=90)


#: two_pets_clip: its size, frames and rate; the cat's box centre runs from about x 167 to 487, the dog's stays
#: at about (540, 265)
TWO_PETS_SIZE, TWO_PETS_FRAMES, TWO_PETS_FPS = (640, 360), 90, 30.0


@pytest.fixture(scope="session")
def two_pets_clip(tmp_path_factory) -> Path:
    """Three seconds of a cat (cat.bmp) walking left to right along the top of a grey picture while a dog (from
    pets.jpg) sits still at the bottom right: the pet SSD finds both in every frame. Made at run time."""
    width, height = TWO_PETS_SIZE
    cat = cv2.resize(imread(IMAGES / "cat.bmp"), (320, 213))
    dog = cv2.resize(imread(IMAGES / "pets.jpg")[0:220, 90:310], (180, 180))
    path = tmp_path_factory.mktemp("clips") / "two_pets.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), TWO_PETS_FPS, (width, height))
    for i in range(TWO_PETS_FRAMES):
        image = np.full((height, width, 3), 120, np.uint8)
        image[height - 180:, width - 180:] = dog
        x = round(i * (width - 320) / (TWO_PETS_FRAMES - 1))
        image[:213, x:x + 320] = cat
        writer.write(image)
    writer.release()
    return path


# --- the shared test toolkit: polling, running a pipeline in the background, a collecting publisher, a fake
# --- camera and pipeline-file builders. Test modules import these from here, never from each other.

#: the pet SSD (37 cat and dog breeds) and its labels
PET_MODEL = MODELS / "ssd_mobilenet_v1_fine_tuned_pet.tflite"
PET_LABEL_FILE = MODELS / "pet_labels.txt"
#: `--set` overrides that put the pet SSD (a cat on cat.bmp and cat_720p.jpg is a cat breed) in the detect pipeline,
#: with every label watched
PET = [f"stages.inference.model={PET_MODEL}", f"stages.inference.labels={PET_LABEL_FILE}", "publish.labels=null"]
#: the pet SSD's cat labels: what it may call the cat in cat.bmp, cat_720p.jpg and the clip made from it
CAT_BREEDS = {"Abyssinian", "Bengal", "Birman", "Bombay", "British_Shorthair", "Egyptian_Mau", "Maine_Coon",
              "Persian", "Ragdoll", "Russian_Blue", "Siamese", "Sphynx"}
#: a grey picture in which the pet SSD finds nothing
BLANK = np.full((480, 640, 3), 128, np.uint8)


def wait_for(condition: Callable[[], T | None], what: str | Callable[[], str], timeout: float = 15.0,
             interval: float = 0.05) -> T:
    """Call `condition` until it returns something truthy, and return that; after `timeout` seconds raise an
    AssertionError naming `what` (a string, or a function giving it at that moment: the state to show)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)
    return value


def app(*args, library_dir: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m app ARGS`; `library_dir` goes first on its library path (an Edge TPU runtime stand-in)."""
    env = {k: v for k, v in os.environ.items() if k != "SMARTCAM_SOURCE"}
    if library_dir:
        env["LD_LIBRARY_PATH"] = str(library_dir)
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=120)


def error_line(proc: subprocess.CompletedProcess, exit_code: int) -> str:
    """The one `error: ` line of a run that failed with `exit_code`, without a traceback."""
    assert proc.returncode == exit_code, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


class Background:
    """A pipeline running in a thread: `with Background(pipeline) as run:` starts it, the end of the block (or
    `run.stop()`) stops it, checks that it stopped and raises what the run failed with."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="test-pipeline", daemon=True)

    def _run(self) -> None:
        try:
            self.pipeline.run()
        except BaseException as exc:  # raised in the test's thread by stop()
            self.errors.append(exc)

    def __enter__(self) -> Background:
        self.thread.start()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.stop(check=kind is None)  # a failing test keeps its own error

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self, timeout: float = 10.0, check: bool = True) -> None:
        self.pipeline.stop()
        self.thread.join(timeout)
        if check:
            assert not self.thread.is_alive(), f"the pipeline did not stop within {timeout:g} s"
            if self.errors:
                raise self.errors[0]


class Collector(Publisher):
    """A publisher that keeps what reaches it in the output lane, safe to read from the test's thread while the
    pipeline runs: each frame's result, its events (with the result), the tracked objects' events, the time it
    came, and the count.

    `at={n: action}` runs `action` in the output lane when the n-th frame arrives (for a finite source: frame seq n),
    before the publishers listed after this one see it; `at_close` runs when the run ends, as this publisher is
    closed (the pipeline closes its publishers all at once, each in its own thread).
    """

    def __init__(self, at: dict[int, Callable[[], object]] | None = None,
                 at_close: Callable[[], object] | None = None) -> None:
        self.at = dict(at or {})
        self.at_close = at_close
        self.closed = False
        self._lock = threading.Lock()
        self._results: list[dict] = []
        self._events: list[tuple[Event, dict]] = []
        self._times: list[float] = []
        self._objects: list[ObjectEvent] = []

    def publish(self, out: Output) -> None:
        with self._lock:
            self._objects += out.objects
            self._results.append(out.result)
            self._events += [(event, out.result) for event in out.events]
            self._times.append(time.monotonic())
            count = len(self._results)
        if count in self.at:
            self.at[count]()

    def finish(self, objects: list[ObjectEvent]) -> None:
        with self._lock:
            self._objects += objects

    def close(self, deadline: float) -> None:
        if self.at_close is not None:
            self.at_close()
        self.closed = True

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._results)

    @property
    def results(self) -> list[dict]:
        with self._lock:
            return list(self._results)

    @property
    def events(self) -> list[tuple[Event, dict]]:
        """(event, the result of the frame it came with), in order."""
        with self._lock:
            return list(self._events)

    @property
    def objects(self) -> list[ObjectEvent]:
        """The tracked objects' events, in order."""
        with self._lock:
            return list(self._objects)

    @property
    def times(self) -> list[float]:
        """When each frame reached this publisher (monotonic)."""
        with self._lock:
            return list(self._times)

    def appeared(self) -> list[str]:
        return [event.label for event, _ in self.events if event.kind == "appeared"]


class FakeCamera(Source):
    """A camera for tests that shows `images` (default: cat.bmp) in turn, each after `pause` seconds (one for all,
    or one per image). Live, it shows them round and round and is reopened when it fails, as a camera is; not live,
    it ends after the last (EndOfStream) and is not reopened, as a folder of images is.

    `fail_reads`: the reads (counted from 1 over the camera's life) that raise OSError, a camera unplugged for a
    moment. `stall()` makes reads hang like a wedged driver (`waiting` is set while one does), `flow()` lets them
    go on; `flowing=False` starts it stalled. `opens` and `reads` count the calls.
    """

    def __init__(self, images: Sequence[np.ndarray] | None = None, pause: float | Sequence[float] = 0.02,
                 live: bool = True, fail_reads: Collection[int] = (), flowing: bool = True,
                 description: str = "fake test camera") -> None:
        self.images = list(images) if images is not None else [imread(IMAGES / "cat.bmp")]
        self.pauses = [pause] * len(self.images) if isinstance(pause, (int, float)) else list(pause)
        assert len(self.pauses) == len(self.images), "one pause per image"
        self.live = self.reconnects = live
        self.fail_reads = set(fail_reads)
        self.description = description
        self.opens = self.reads = self.shown = 0
        self.waiting = threading.Event()
        self._flowing = threading.Event()
        if flowing:
            self._flowing.set()

    def stall(self) -> None:
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    def open(self) -> None:
        self.opens += 1

    def read(self) -> Captured:
        if not self._flowing.is_set():
            self.waiting.set()
            self._flowing.wait()
            self.waiting.clear()
        self.reads += 1
        if self.reads in self.fail_reads:
            raise OSError("unplugged")
        if not self.live and self.shown == len(self.images):
            raise EndOfStream(self.description)
        index = self.shown % len(self.images)
        self.shown += 1
        time.sleep(self.pauses[index])
        return Captured(self.images[index])

    def close(self) -> None:
        pass


def network_camera(port: int) -> Background:
    """A smartcam serving the pattern as MJPEG on http://127.0.0.1:PORT/stream.mjpg: a network camera for another
    pipeline to read (not started yet: `with network_camera(port) as camera:`)."""
    settings = load_settings("detect", None, [*PET, "camera.source=pattern", "camera.width=320",
                                              "camera.height=240", "http.enabled=true", f"http.port={port}"])
    return Background(Pipeline(settings, [HttpPublisher(settings.device.http)]))


def opened_v4l2(**camera) -> V4L2Source:
    """A V4L2Source on /dev/video0 with `camera` settings, opened (through the test's stand-in cv2.VideoCapture)."""
    source = V4L2Source(CameraConfig(source="/dev/video0", **camera), "/dev/video0")
    source.open()
    return source


def pet_pipeline(directory: Path, name: str = "pets", *, preprocess: dict | None = None,
                 postprocess: dict | None = None, filter: dict | None = None, track: dict | None = None,
                 overlay: dict | None = None, publish: dict | None = None,
                 description: str = "the pet SSD, for a test") -> Path:
    """Write `directory/NAME.yaml`, a pipeline file (the pipeline is called NAME) running the pet SSD with the given
    stage parameters and output blocks; a stage or block given as None is left out (filter, track, overlay,
    publish) or empty (preprocess, postprocess)."""
    stages: list[dict] = [{"preprocess": preprocess or {}},
                          {"inference": {"model": str(PET_MODEL), "labels": str(PET_LABEL_FILE)}},
                          {"postprocess": postprocess or {}}]
    if filter is not None:
        stages.append({"filter": filter})
    if track is not None:
        stages.append({"track": track})
    document: dict = {"description": description, "stages": stages}
    if overlay is not None:
        document["overlay"] = overlay
    if publish is not None:
        document["publish"] = publish
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def cat_settings(tmp_path: Path, *overrides: str) -> Settings:
    """The pipeline `cats`: the pet SSD watching for cats (any breed), events after one frame, snapshots on into
    tmp_path/snaps."""
    path = pet_pipeline(tmp_path, "cats", description="cats", publish={
        "labels": sorted(CAT_BREEDS), "appear_frames": 1, "clear_frames": 1, "snapshots": {"min_score": 0.3}})
    return load_settings(str(path), None, ["snapshots.enabled=true", f"snapshots.dir={tmp_path / 'snaps'}",
                                           *overrides])


def alternating_folder(tmp_path: Path, cats: int) -> Path:
    """A folder of images: cat, blank, cat, blank, … cat; every cat is an appearance when clear_frames is 1."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2 * cats - 1):
        if i % 2:
            cv2.imwrite(str(folder / f"{i:02d}_blank.png"), BLANK)
        else:
            shutil.copy(IMAGES / "cat.bmp", folder / f"{i:02d}_cat.bmp")
    return folder


def make_certificates(directory: Path) -> dict[str, Path]:
    """A throwaway CA, and a server certificate for 127.0.0.1 and localhost signed by it."""
    files = {name: directory / f"{name}.pem" for name in ("ca", "ca_key", "server", "server_key")}
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for command in (
        f"req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=smartcam-test-ca -keyout {files['ca_key']} "
        f"-out {files['ca']}",
        f"req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout {files['server_key']} -out {directory}/server.csr",
        f"x509 -req -days 1 -in {directory}/server.csr -CA {files['ca']} -CAkey {files['ca_key']} -CAcreateserial "
        f"-extfile {directory}/san.ext -out {files['server']}",
    ):
        subprocess.run(["openssl", *command.split()], check=True, capture_output=True)
    return files


# --- MQTT: a real broker and a subscriber that records what it gets


class Broker:
    """mosquitto on 127.0.0.1:port, without persistence: killed, it forgets every retained message."""

    def __init__(self, directory: Path, port: int, settings: str = "allow_anonymous true\n") -> None:
        self.port = port
        self.conf = directory / f"mosquitto-{port}.conf"
        # as root, mosquitto switches to the `mosquitto` user, which cannot read files in pytest's private tmp_path
        stay = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"listener {port} 127.0.0.1\npersistence false\n{stay}{settings}")
        self.log = directory / f"mosquitto-{port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log, stderr=log)
        wait_for(self._listening, lambda: f"mosquitto to listen on {self.port}: {self.log.read_text()}", 10)

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {self.process.returncode}: {self.log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test left it stopped (SIGSTOP: a hung broker)
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def start() -> Iterator:
    """`start(settings)` starts an MQTT publisher without a pipeline (tests/mqtt_instances.py `Instance`), as one
    running smartcam has it; every one still running is stopped at the end."""
    from mqtt_instances import Instance  # a helper module of its own that builds on this one

    instances: list = []

    def started(settings: Settings, **kwargs):
        instance = Instance(settings, **kwargs)
        instances.append(instance)
        return instance

    yield started
    for instance in instances:
        instance.stop()


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    """A running mosquitto that accepts anyone, on a free port."""
    running = Broker(tmp_path, free_port())
    running.start()
    yield running
    running.kill()


class Subscriber:
    """A test client that records every message under `topic`, subscribed when it is made."""

    def __init__(self, port: int, topic: str = "#", username: str = "", password: str = "", ca: str = "") -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if username:
            self.client.username_pw_set(username, password)
        if ca:
            self.client.tls_set(ca_certs=ca)
        self.client.on_connect = lambda client, *_: client.subscribe(topic, 1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._record
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(10):
            self.close()
            raise AssertionError(f"could not subscribe to {topic!r} on 127.0.0.1:{port}")

    def _record(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def payloads(self, topic: str, retained: bool | None = None) -> list[bytes]:
        with self._lock:
            return [bytes(m.payload) for m in self.messages
                    if m.topic == topic and (retained is None or m.retain == retained)]

    def topics(self, start: str = "") -> list[str]:
        with self._lock:
            return [m.topic for m in self.messages if m.topic.startswith(start)]

    def discovery(self) -> list[str]:
        """The Home Assistant discovery config topics received, in order."""
        return [t for t in self.topics("homeassistant/") if t.endswith("/config")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def subscribed(port: int, topic: str = "#", **options: str) -> Iterator[Subscriber]:
    """A Subscriber for the block."""
    subscriber = Subscriber(port, topic, **options)
    try:
        yield subscriber
    finally:
        subscriber.close()


# --- Edge TPU runtime stand-ins: each test sets up the runtime it tests, whatever this machine has ------------------

#: the TFLite external-delegate entry points libedgetpu exports; no device answers, so no delegate
ABSENT_DEVICE_RUNTIME = r"""
#include <stddef.h>
void *tflite_plugin_create_delegate(char **keys, char **values, size_t n, void (*report)(const char *)) {
    if (report) report("Failed to open device: no Edge TPU found");
    return NULL;
}
void tflite_plugin_destroy_delegate(void *delegate) { (void)delegate; }
"""
#: dpkg as on a machine whose Edge TPU runtime was built by hand: it knows no libedgetpu package
DPKG_WITHOUT_LIBEDGETPU = "#!/bin/sh\necho \"dpkg-query: no packages found matching $*\" >&2\nexit 1\n"


def _compile_library(folder: Path, name: str, source: str, *flags: str) -> None:
    (folder / f"{name}.c").write_text(source)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(folder / name), str(folder / f"{name}.c"), *flags],
                   check=True)


@pytest.fixture(scope="session")
def edgetpu_runtime_without_device(tmp_path_factory) -> Path:
    """A folder to put first on LD_LIBRARY_PATH and PATH: a `libedgetpu.so.1` that loads and finds no device, and
    a dpkg that does not know it (so the matched-pair check trusts it, whatever this machine has installed)."""
    folder = tmp_path_factory.mktemp("libedgetpu")
    _compile_library(folder, "libedgetpu.so.1", ABSENT_DEVICE_RUNTIME)
    (folder / "dpkg-query").write_text(DPKG_WITHOUT_LIBEDGETPU)
    (folder / "dpkg-query").chmod(0o755)
    return folder


@pytest.fixture(scope="session")
def edgetpu_runtime_absent(tmp_path_factory) -> Path:
    """A folder to put first on LD_LIBRARY_PATH that hides any Edge TPU runtime of this machine: its
    `libedgetpu.so.1` needs a library that is gone, and the loader stops at the first file of that name it finds
    rather than trying the system's."""
    folder = tmp_path_factory.mktemp("no_libedgetpu")
    _compile_library(folder, "libsmartcam_gone.so", "void smartcam_gone(void) {}\n")
    _compile_library(folder, "libedgetpu.so.1", "void tflite_plugin_destroy_delegate(void *d) { (void)d; }\n",
                     "-Wl,--no-as-needed", f"-L{folder}", "-lsmartcam_gone")
    (folder / "libsmartcam_gone.so").unlink()
    return folder
