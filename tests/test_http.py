"""The HTTP publisher against a real pipeline: the page in headless Chromium, the MJPEG stream, Prometheus text,
health, a stalled stream client, path traversal and auth."""

from __future__ import annotations

import base64
import math
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from app.config import load_settings
from app.errors import ConfigError
from app.metrics import Stats
from app.output_lane import OUTPUT_QUEUE_SIZE
from app.pipeline import Pipeline
from app.outputs.base import PublishContext
from app.outputs.http import HttpPublisher
from app.sources.base import Source
from conftest import CAT_BREEDS, IMAGES, PET, Background, Collector, FakeCamera, decode_jpeg, imread, wait_for
from browser import chromium, page_value
from http_client import get_json, read_frames, request

TOKEN = "s3cret-token-for-tests"  # an open bind needs at least 16 characters
USER, PASSWORD = "viewer", "pa:ss wörd"


class Served(NamedTuple):
    pipeline: Pipeline
    http: HttpPublisher
    #: after the HTTP publisher in the output lane: it stalls if that one blocks the lane
    collector: Collector

    @property
    def port(self) -> int:
        assert self.http.port is not None, "not listening"
        return self.http.port


@contextmanager
def serving(*overrides: str, source: Source | None = None, send_timeout_s: float = 2.0) -> Iterator[Served]:
    """A real pipeline with the HTTP publisher on a free port, running in a thread until the block ends."""
    settings = load_settings("detect", None, [*PET, "http.enabled=true", "http.port=0", *overrides])
    server, collector = HttpPublisher(settings.device.http), Collector()
    server.send_timeout_s = send_timeout_s
    pipeline = Pipeline(settings, [server, collector], source)
    with Background(pipeline) as run:
        wait_for(lambda: server.port or run.errors, "the HTTP server to listen", 30)
        if run.errors:
            raise run.errors[0]
        yield Served(pipeline, server, collector)


def detection_labels(dom: str) -> list[str]:
    found = re.search(r'<ul id="detections">(.*?)</ul>', dom, re.S)
    assert found, dom[:2000]
    return [text.split()[0] for text in re.findall(r'<span class="label">([^<]+)</span>', found.group(1))]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder with a config-like secret and a snapshots folder holding two real JPEGs and a text file."""
    root = tmp_path_factory.mktemp("site")
    (root / "config.yaml").write_text("mqtt: {password: SECRET}\n")
    shutil.copy(IMAGES / "cat_720p.jpg", root / "outside.jpg")
    snapshots = root / "snapshots"
    snapshots.mkdir()
    shutil.copy(IMAGES / "cat_720p.jpg", snapshots / "20260101-120000_cam0_Bengal.jpg")
    shutil.copy(IMAGES / "cat_720p.jpg", snapshots / "20260102-120000_cam0_Bengal.jpg")
    os.utime(snapshots / "20260101-120000_cam0_Bengal.jpg", (1_700_000_000, 1_700_000_000))
    (snapshots / "notes.txt").write_text("not a snapshot")
    (snapshots / "link.jpg").symlink_to(root / "outside.jpg")
    return root


@pytest.fixture(scope="module")
def live(cat_clip, site) -> Iterator[Served]:
    """The cat clip as a live camera (paced, looping) with the HTTP publisher; frames flowing when it yields."""
    with serving(f"camera.source={cat_clip}", "camera.realtime=true", "camera.loop=true",
                 f"snapshots.dir={site / 'snapshots'}", "http.stream.max_fps=30") as running:
        wait_for(lambda: running.http.latest is not None, "the first result", 30)
        yield running


# --- the page in a real browser -----------------------------------------------------------------------------------


def test_the_page_shows_the_stream_and_the_detections_in_chromium(live, tmp_path):
    url = f"http://127.0.0.1:{live.port}/"
    def page_with_a_cat() -> str | None:
        dom = chromium(url, tmp_path, "--dump-dom")
        return dom if set(detection_labels(dom)) & CAT_BREEDS else None

    dom = wait_for(page_with_a_cat, "a cat breed in the page's detection list", 60, interval=0.5)
    assert re.search(r'<img id="stream"[^>]* src="stream\.mjpg[^"]*"', dom)
    assert re.search(r'id="fps">\d+\.\d<', dom)
    assert re.search(r'id="model">ssd_mobilenet_v1_fine_tuned_pet\.tflite<', dom)
    assert re.search(r'id="status" class="live"', dom)
    # the detect pipeline tracks: a detection shows its track id, and the object's events are listed
    assert re.search(r'<ul id="detections">.*?<span class="label">\S+ #\d+ ', dom, re.S), dom[:3000]
    objects = re.search(r'<section id="objects-section">.*?<ul id="objects">(.*?)</ul>', dom, re.S)
    assert objects and re.search(r'#\d+ new', objects.group(1)), dom[:3000]

    shot = tmp_path / "page.png"

    def screenshot_shows_the_stream() -> bool:
        chromium(url, tmp_path, f"--screenshot={shot}", "--window-size=1280,900", "--hide-scrollbars")
        image = imread(shot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.shape == (900, 1280, 3)
        video = image[120:520, 60:860]  # where the stream sits: a photo, not the black placeholder
        return video.std() > 20 and len(np.unique(video.reshape(-1, 3), axis=0)) > 1000

    wait_for(screenshot_shows_the_stream, "a screenshot with the stream in it", 60, interval=0.5)
    print(f"screenshot of the live page: {shot}")


def test_the_page_says_live_on_a_still_scene_that_motion_gating_skips(tmp_path):
    """Nothing moves and the model finds nothing: results come only at the keep-alive, frames keep coming."""
    camera = FakeCamera([imread(IMAGES / "owl.jpg")], pause=0.02)
    with serving("camera.motion.keepalive_s=600", source=camera) as running:
        wait_for(lambda: running.pipeline.stats.drops["no_motion"] > 20, "frames skipped by motion gating", 30)
        wait_for(lambda: running.pipeline.stats.recent_fps() == 0, "no recent results", 30)
        port = running.http.port
        assert port is not None
        # a new viewer sees the latest frame at once, not a black page until the next inferred one
        assert decode_jpeg(read_frames(port, 1)[0]).shape == (*camera.images[0].shape[:2], 3)
        status = page_value(f"http://127.0.0.1:{port}/", tmp_path, "document.getElementById('status').outerHTML",
                            lambda html: 'class="live"' in str(html))
    assert status == '<span id="status" class="live">live: nothing moving</span>', status


def test_the_page_is_one_offline_file(live):
    status, headers, body = request(live.port, "/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in headers["content-security-policy"]
    page = body.decode()
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from the internet
    for element in ('id="stream"', 'id="detections"', 'id="fps"', 'id="inference"', 'id="drops"',
                    'id="model"', 'id="uptime"', 'id="classes"'):
        assert element in page


# --- stream, snapshot, API ------------------------------------------------------------------------------------------


def test_the_stream_sends_complete_jpegs(live):
    frames = read_frames(live.port, 3)
    image = decode_jpeg(frames[-1])
    assert image.shape == (720, 1280, 3)
    wait_for(lambda: live.http.stream_clients == 0, "the stream client to be counted as gone", 10)


def test_snapshot_is_the_latest_annotated_frame(live):
    status, headers, body = request(live.port, "/snapshot.jpg")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert decode_jpeg(body).shape == (720, 1280, 3)


def test_api_latest_has_the_one_result_shape(live):
    result = get_json(live.port, "/api/latest")
    assert set(result) >= {"pipeline", "source", "seq", "ts", "size", "detections", "timing_ms", "counts", "objects",
                           "zones", "lines"}
    assert all(event["type"] in ("new", "update", "end") and "track_id" in event for event in result["objects"])
    assert result["pipeline"] == "detect" and result["source"] == "cam0" and result["size"] == [1280, 720]
    assert abs(result["ts"] - time.time()) < 60
    assert set(result["timing_ms"]) >= {"preprocess", "inference", "postprocess", "exposure_to_result"}
    for detection in result["detections"]:
        assert set(detection) - {"track_id", "zones"} == {"label", "class_id", "score", "box"}  # detect tracks
        assert len(detection["box"]) == 4
    assert all(isinstance(n, int) for n in result["counts"].values())
    later = wait_for(lambda: r if (r := get_json(live.port, "/api/latest"))["seq"] > result["seq"] else None,
                     "a newer seq", 10)
    assert later["seq"] > result["seq"]


def test_api_stats_has_rates_latencies_and_the_run(live):
    stats = get_json(live.port, "/api/stats")
    assert set(stats) >= {"fps", "processed", "captured", "drops", "dropped", "inference_ms", "exposure_to_result_ms",
                          "uptime_s", "model", "accelerator", "runtime", "source_description", "pipeline", "camera",
                          "warnings", "stream"}
    assert stats["fps"] > 0 and stats["captured"] >= stats["processed"] > 0 and stats["uptime_s"] > 0
    assert stats["dropped"] == sum(stats["drops"].values())
    for key in ("inference_ms", "exposure_to_result_ms", "exposure_to_publish_ms"):
        assert 0 < stats[key]["p50"] <= stats[key]["p95"]
    assert stats["model"] == "ssd_mobilenet_v1_fine_tuned_pet.tflite" and stats["pipeline"] == "detect"
    assert isinstance(stats["warnings"], list)


def test_unknown_paths_are_404(live):
    assert request(live.port, "/nothing")[0] == 404
    assert request(live.port, "/api/latest/../stats")[0] == 404


# --- /metrics ---------------------------------------------------------------------------------------------------


METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(rf"^({METRIC_NAME})(?:\{{(.*)\}})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_prometheus(text: str) -> dict[str, dict]:
    """A strict reader of text format 0.0.4: {family: {type, help, samples: [(name, labels, value)]}}."""
    assert text.endswith("\n")
    families: dict[str, dict] = {}
    seen: set[tuple] = set()
    for line in text.splitlines():
        assert line.strip(), "blank line"
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _, keyword, name, rest = line.split(" ", 3)
            assert re.fullmatch(METRIC_NAME, name), line
            family = families.setdefault(name, {"type": None, "help": None, "samples": []})
            key = keyword.lower()
            assert family[key] is None and not family["samples"], f"{keyword} repeated or after samples: {line}"
            family[key] = rest
            if key == "type":
                assert rest in TYPES, line
            continue
        assert not line.startswith("#"), line
        match = SAMPLE.match(line)
        assert match, f"not a sample: {line!r}"
        name, raw_labels, raw_value = match.groups()
        labels = {}
        if raw_labels:
            pairs = LABEL.findall(raw_labels)
            assert ",".join(f'{k}="{v}"' for k, v in pairs) == raw_labels.rstrip(","), line
            labels = dict(pairs)
        value = float(raw_value)  # also accepts +Inf, NaN as the format does
        family_name = next((f for f in (name, *(name[: -len(s)] for s in ("_bucket", "_sum", "_count")
                                                 if name.endswith(s))) if f in families), None)
        assert family_name and families[family_name]["type"], f"sample before its TYPE: {line}"
        if family_name != name:
            assert families[family_name]["type"] in ("histogram", "summary"), line
        assert (name, tuple(sorted(labels.items()))) not in seen, f"duplicate sample: {line}"
        seen.add((name, tuple(sorted(labels.items()))))
        families[family_name]["samples"].append((name, labels, value))
    return families


def check_histogram(family: dict, name: str) -> int:
    """Buckets cumulative and ordered, +Inf equals _count; the count."""
    buckets = [(float(labels["le"]), value) for sample, labels, value in family["samples"]
               if sample == f"{name}_bucket"]
    bounds = [le for le, _ in buckets]
    assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds) and math.isinf(bounds[-1])
    counts = [value for _, value in buckets]
    assert counts == sorted(counts), "bucket counts must be cumulative"
    values = {sample: value for sample, _, value in family["samples"]}
    assert counts[-1] == values[f"{name}_count"] and values[f"{name}_sum"] >= 0
    return int(values[f"{name}_count"])


def test_metrics_is_consistent_prometheus_text(live):
    status, headers, body = request(live.port, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    families = parse_prometheus(body.decode())
    kinds = {name: family["type"] for name, family in families.items()}
    assert kinds["smartcam_frames_captured_total"] == kinds["smartcam_frames_processed_total"] == "counter"
    assert kinds["smartcam_frames_dropped_total"] == "counter" and kinds["smartcam_fps"] == "gauge"
    assert kinds["smartcam_uptime_seconds"] == "gauge"
    assert kinds["smartcam_inference_seconds"] == kinds["smartcam_exposure_to_result_seconds"] == "histogram"
    assert all(family["help"] for family in families.values())
    value = {name: family["samples"][0][2] for name, family in families.items()
             if family["type"] != "histogram" and family["samples"]}
    assert value["smartcam_frames_captured_total"] >= value["smartcam_frames_processed_total"] > 0
    assert value["smartcam_fps"] > 0 and value["smartcam_uptime_seconds"] > 0
    for _, labels, _ in families["smartcam_frames_dropped_total"]["samples"]:
        assert set(labels) == {"reason"}
    # both histograms and the counter come from one consistent read: every processed frame is in each
    processed = value["smartcam_frames_processed_total"]
    assert check_histogram(families["smartcam_inference_seconds"], "smartcam_inference_seconds") == processed
    assert check_histogram(families["smartcam_exposure_to_result_seconds"],
                           "smartcam_exposure_to_result_seconds") == processed
    # a frame is published after its result: at most the frames waiting in the output queue are not in it yet
    published = check_histogram(families["smartcam_exposure_to_publish_seconds"],
                                "smartcam_exposure_to_publish_seconds")
    assert processed - OUTPUT_QUEUE_SIZE - 1 <= published <= processed and published > 0


def test_prometheus_text_escapes_label_values():
    stats = Stats()
    stats.info.update(model='we"ird\\name\n.tflite')
    stats.drop('a "quoted" reason')
    families = parse_prometheus(stats.prometheus())
    assert families["smartcam_info"]["samples"][0][1]["model"] == r'we\"ird\\name\n.tflite'
    assert check_histogram(families["smartcam_inference_seconds"], "smartcam_inference_seconds") == 0


# --- health -------------------------------------------------------------------------------------------------------


def test_healthz_follows_the_camera(tmp_path):
    camera = FakeCamera(flowing=False, description="gated test camera")
    try:
        with serving("http.stall_after_s=1", source=camera) as running:
            def health() -> tuple[int, str]:
                status, _, body = request(running.port, "/healthz")
                return status, body.decode()

            assert health() == (503, "starting: no frame captured yet\n")
            camera.flow()
            wait_for(lambda: health() == (200, "ok\n"), "healthz 200 while frames flow", 20)
            camera.stall()
            status, reason = wait_for(lambda: h if (h := health())[0] == 503 else None, "healthz 503 once stalled", 10)
            assert reason.startswith("stalled: no frame captured for ") and "camera" not in reason  # no address
            camera.flow()
            wait_for(lambda: health()[0] == 200, "healthz 200 again", 10)
    finally:
        camera.flow()


# --- a stalled stream client ----------------------------------------------------------------------------------------


def published_rate(running: Served, seconds: float = 2.0) -> float:
    """Frames per second that reached the outputs (a blocked publisher would stall this count)."""
    start, started = running.collector.count, time.monotonic()
    time.sleep(seconds)
    return (running.collector.count - start) / (time.monotonic() - started)


def test_a_stalled_stream_client_slows_nothing_and_is_dropped(live):
    wait_for(lambda: live.http.stream_clients == 0, "no stream clients", 10)
    without = published_rate(live)
    dropped_before = live.http.stream_clients_dropped
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    try:
        stalled.connect(("127.0.0.1", live.port))
        stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: camera\r\n\r\n")  # and never read
        wait_for(lambda: live.http.stream_clients >= 1, "the stalled client to be streaming", 10)
        with_stalled = published_rate(live)
        assert len(read_frames(live.port, 3)) == 3  # other clients still get frames
        assert without > 0 and with_stalled >= 0.5 * without, (with_stalled, without)
        wait_for(lambda: live.http.stream_clients_dropped > dropped_before, "the stalled client to be dropped", 30)
        wait_for(lambda: live.http.stream_clients == 0, "no stream clients left", 10)
        assert get_json(live.port, "/api/stats")["stream"]["clients_dropped"] > dropped_before
    finally:
        stalled.close()


# --- snapshots: files and no way out ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/snapshots/../config.yaml", "/snapshots/%2e%2e/config.yaml", "/snapshots/%2e%2e%2fconfig.yaml",
    "/snapshots/..%2fconfig.yaml", "/snapshots/%252e%252e%252fconfig.yaml", "/snapshots//etc/passwd",
    "/snapshots/%2fetc%2fpasswd", "/snapshots/..%5cconfig.yaml", "/snapshots/notes.txt", "/snapshots/link.jpg",
    "/snapshots/x.jpg%00.txt", "/snapshots/missing.jpg", "/snapshots/../outside.jpg", "/snapshots/%2e%2e%2foutside.jpg",
])
def test_snapshot_paths_cannot_leave_the_folder(live, path):
    status, _, body = request(live.port, path)
    assert status == 404 and b"SECRET" not in body and b"root:" not in body


def test_snapshot_files_are_served_and_listed_newest_first(live, site):
    name = "20260101-120000_cam0_Bengal.jpg"
    status, headers, body = request(live.port, f"/snapshots/{name}")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert body == (site / "snapshots" / name).read_bytes()
    listing = get_json(live.port, "/snapshots/")["files"]  # not notes.txt, not the link that leads out
    assert [f["name"] for f in listing] == ["20260102-120000_cam0_Bengal.jpg", name]
    assert listing[1] == {"name": name, "size": len(body), "mtime": 1_700_000_000, "url": f"/snapshots/{name}"}


# --- auth and binding ---------------------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_auth_guards_everything_but_healthz(tmp_path):
    with serving("camera.source=pattern", "camera.fps=15", "camera.width=320", "camera.height=240",
                 f"http.token={TOKEN}", f"http.username={USER}", f"http.password={PASSWORD}") as running:
        port = running.port
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        wait_for(lambda: request(port, "/api/latest", bearer)[0] == 200, "the first result", 30)
        status, headers, _ = request(port, "/api/latest")
        assert status == 401 and 'Basic realm="smartcam"' in headers["www-authenticate"]
        for path in ("/", "/stream.mjpg", "/snapshot.jpg", "/api/stats", "/metrics", "/snapshots/"):
            assert request(port, path)[0] == 401, path
        assert request(port, "/api/latest", {"Authorization": "Bearer wrong"})[0] == 401
        assert request(port, f"/api/latest?token={TOKEN}")[0] == 200
        assert request(port, "/api/latest?token=wrong")[0] == 401
        assert request(port, "/api/latest", basic(USER, PASSWORD))[0] == 200
        assert request(port, "/api/latest", basic(USER, "wrong"))[0] == 401
        assert request(port, "/api/latest", {"Authorization": "Basic !!notbase64"})[0] == 401
        assert request(port, "/healthz")[0] == 200

        status, headers, _ = request(port, f"/?token={TOKEN}")  # the page remembers the token in a cookie
        assert status == 200 and "HttpOnly" in headers["set-cookie"]
        cookie = {"Cookie": headers["set-cookie"].split(";")[0]}
        assert request(port, "/api/stats", cookie)[0] == 200
        assert len(read_frames(port, 2, cookie)) == 2
        assert request(port, "/api/stats", {"Cookie": "smartcam_token=wrong"})[0] == 401

        dom = chromium(f"http://127.0.0.1:{port}/?token={TOKEN}", tmp_path, "--dump-dom")
        assert re.search(r'id="model">ssd_mobilenet_v1_fine_tuned_pet\.tflite<', dom)  # fetches carried the cookie
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)  # closed with the run


def test_an_open_bind_without_auth_is_refused():
    with pytest.raises(ConfigError) as error:
        load_settings("detect", None, [*PET, "http.enabled=true", "http.bind=0.0.0.0"])
    message = str(error.value)
    assert "http" in message and "0.0.0.0" in message
    assert "http.token" in message and "http.allow_unauthenticated" in message
    settings = load_settings("detect", None, [*PET, "http.enabled=true", "http.bind=0.0.0.0", f"http.token={TOKEN}"])
    assert settings.device.http.has_auth


def test_a_port_in_use_is_one_clear_line():
    """What /healthz and /api/stats say while the port is waited for (that it is taken once free: test_waits.py)."""
    settings = load_settings("detect", None, [*PET, "http.enabled=true"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings.device.http.port = port
        server = HttpPublisher(settings.device.http)
        server.start(PublishContext(settings, Stats(), settings.pipeline.publish))  # the camera runs meanwhile
        try:
            health = server.health_document()
        finally:
            server.close(time.monotonic() + 5)
    assert (health["ok"], health["state"]) == (False, "waiting")
    reason = str(health["last_error"])
    assert reason.startswith(f"http.port {port} is in use on 127.0.0.1")
    assert "choose another port" in reason and "\n" not in reason
