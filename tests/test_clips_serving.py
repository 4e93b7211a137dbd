"""Serving event clips: a clip the real pipeline made (a 60 s H.264 camera, a cat from 20 to 35 s, paced as live) is
listed by /api/clips, served with HTTP ranges and plays in headless Chromium from the live page; the object
events that MQTT (a real mosquitto) and a webhook sent carry the URL of that clip; /api/clips filters; clips need
the token and are refused with privacy on; the planner names a clip only for the objects in one."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError

import pytest

from app.clips.planner import ClipPlanner, planned_clip
from app.clips.recorder import Recorder
from app.clips.ring import PacketRing
from app.config import load_settings
from app.config.clips import ClipsConfig
from app.metrics import Stats
from app.outputs import build_publishers
from app.outputs.base import PublishContext
from app.outputs.clips import url_base
from app.outputs.http import HttpPublisher
from app.pipeline import Pipeline
from app.scene.tracker import END, NEW, ObjectEvent
from app.sources import pacer, video_file
from browser import page_value
from clip_video import FPS, SPEED, FedRing, clip_settings, make_h264
from webhook_receiver import Receiver
from conftest import CAT_BREEDS, Broker, free_port, pet_pipeline, subscribed, wait_for

TOKEN = "a-token-of-twenty-chars"
#: how many frames the recorder runs behind the planner (its worker behind the output lane)
LAG = 15


@dataclass
class Served:
    """A run's clip, served by an HTTP output on the port the run's events named."""

    base: str
    folder: Path
    sidecar: dict
    mqtt_objects: list[dict]
    webhook_objects: list[dict]
    discovery: dict


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    """One run of the pipeline with clips, MQTT, a webhook and HTTP on; then an HTTP output serving its clips."""
    tmp_path = tmp_path_factory.mktemp("served")
    source = make_h264(tmp_path / "camera.mp4", 60, 20, 35)
    broker, hooks, port = Broker(tmp_path, free_port()), Receiver(), free_port()
    broker.start()
    settings = clip_settings(tmp_path, source, "camera.realtime=true", "mqtt.enabled=true", "mqtt.host=127.0.0.1",
                             f"mqtt.port={broker.port}", "webhooks.enabled=true", f"webhooks.urls=[{hooks.url}]",
                             "http.enabled=true", f"http.port={port}")
    try:
        with pytest.MonkeyPatch.context() as patch, subscribed(broker.port) as live:
            patch.setattr(video_file, "Pacer", lambda fps: pacer.Pacer(fps * SPEED))
            Pipeline(settings, build_publishers(settings)).run()
            base = f"smartcam/{settings.device.camera.name}/cats"
            wait_for(lambda: live.payloads(f"{base}/availability")[-1:] == [b"offline"], "offline after the run")
            mqtt_objects = [json.loads(p) for p in live.payloads(f"{base}/objects")]
            discovery = json.loads(next(p for m in live.discovery() for p in live.payloads(m)))
        folder = tmp_path / "clips" / settings.device.camera.name
        sidecars = sorted(folder.glob("*.json"))
        assert len(sidecars) == 1, sidecars
        http = HttpPublisher(settings.device.http)
        http.start(PublishContext(settings, Stats(), settings.pipeline.publish))
        try:
            yield Served(f"http://127.0.0.1:{port}", folder, json.loads(sidecars[0].read_text()), mqtt_objects,
                         [body for body in hooks.bodies() if "track_id" in body], discovery)
        finally:
            http.close(time.monotonic() + 5)
    finally:
        hooks.close()
        broker.kill()


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_end_events_on_mqtt_and_webhooks_carry_the_url_of_the_clip_that_appears(served):
    name = served.sidecar["video"].removesuffix(".mp4")
    url = f"{served.base}/clips/{name}.mp4"
    for objects in (served.mqtt_objects, served.webhook_objects):
        ends = [event for event in objects if event["type"] == END]
        assert ends and {event["clip_url"] for event in ends} == {url}, ends
        assert {event["track_id"] for event in ends} <= set(served.sidecar["track_ids"])
        assert all(event.get("clip_url") == url for event in objects)  # every event of an object in the clip
    status, _, body = get(url)
    assert status == 200 and body == (served.folder / served.sidecar["video"]).read_bytes()
    template = served.discovery["components"]["objects"]["value_template"]
    assert "'clip_url': value_json.clip_url" in template  # Home Assistant's event entity: an attribute


def test_the_clip_plays_in_chromium_from_the_live_page(served, tmp_path):
    """The page lists the clip with its thumbnail; clicked, its <video> has it all (readyState 4) and its duration
    is the sidecar's."""
    state = ("(() => { const button = document.querySelector('#clips button'); if (!button) return null;"
             " const video = document.getElementById('clip'); if (!video.src) button.click();"
             " return [video.readyState, video.duration, button.querySelector('img').naturalWidth]; })()")
    value = page_value(f"{served.base}/", tmp_path, state, lambda v: isinstance(v, list) and v[0] == 4)
    assert value and value[0] == 4, value
    assert value[1] == pytest.approx(served.sidecar["duration_s"], abs=0.5)
    assert value[2] == 320  # the thumbnail, at the camera's size


def test_a_clip_is_served_in_ranges_and_nothing_outside_the_folder(served):
    video = served.folder / served.sidecar["video"]
    data, url = video.read_bytes(), f"{served.base}/clips/{served.sidecar['video']}"
    status, headers, body = get(url, Range="bytes=100-199")
    assert (status, body) == (206, data[100:200])
    assert headers["Content-Range"] == f"bytes 100-199/{len(data)}" and headers["Accept-Ranges"] == "bytes"
    assert get(url, Range="bytes=-10")[2] == data[-10:]
    status, headers, _ = get(url, Range=f"bytes={len(data)}-")
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
    status, headers, body = get(url)
    assert (status, body, headers["Accept-Ranges"]) == (200, data, "bytes")
    status, headers, body = get(f"{served.base}/clips/{served.sidecar['thumbnail']}")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    (served.folder.parent / "secret.mp4").write_bytes(b"not a clip")
    for path in ("..%2Fsecret.mp4", "../secret.mp4", "%2E%2E%2Fsecret.mp4", "camera.mp4",
                 served.sidecar["video"].replace(".mp4", ".json")):
        assert get(f"{served.base}/clips/{path}")[0] == 404, path


def stored(folder: Path, name: str, labels: list[str], tracks: list[int], start: float, end: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.mp4").write_bytes(b"\0" * 300)
    (folder / f"{name}.jpg").write_bytes(b"\xff\xd8")
    (folder / f"{name}.json").write_text(json.dumps({"labels": labels, "track_ids": tracks, "start_ts": start,
                                                     "end_ts": end, "video": f"{name}.mp4"}))


@pytest.fixture
def stored_clips(tmp_path) -> Iterator[tuple[str, list[str]]]:
    """An HTTP output (with a token) over three stored clips (2026-12-01 10:00, 11:00, 12:00 UTC, each a minute);
    its base and their names, oldest first."""
    settings = load_settings(str(pet_pipeline(tmp_path, "cats", track={})), None, [
        "camera.source=pattern", f"clips.dir={tmp_path / 'clips'}", "http.enabled=true", f"http.token={TOKEN}",
        f"http.port={free_port()}"])
    folder = tmp_path / "clips" / settings.device.camera.name
    names = [f"20261201-{hour}0000-000Z_cam0" for hour in (10, 11, 12)]
    hour = 1_796_119_200.0  # 2026-12-01T10:00:00Z
    for n, (name, labels) in enumerate(zip(names, (["Bengal"], ["dog"], ["Bengal", "dog"]), strict=True)):
        stored(folder, name, labels, [n + 1, 7], hour + n * 3600, hour + n * 3600 + 60)
    http = HttpPublisher(settings.device.http)
    http.start(PublishContext(settings, Stats(), settings.pipeline.publish))
    try:
        yield f"http://127.0.0.1:{http.port}", names
    finally:
        http.close(time.monotonic() + 5)


@pytest.fixture
def local_time_not_utc(monkeypatch) -> Iterator[None]:
    """The board's local time is New York's: a time given without a zone must still be read as UTC."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_api_clips_lists_newest_first_with_filters(stored_clips, local_time_not_utc):
    base, names = stored_clips

    def listed(query: str = "") -> list[str]:
        status, _, body = get(f"{base}/api/clips?token={TOKEN}{query}")
        assert status == 200, body
        return [clip["name"] for clip in json.loads(body)["clips"]]

    assert listed() == names[::-1]
    assert listed("&label=Bengal") == [names[2], names[0]]
    assert listed("&track_id=2") == [names[1]] and listed("&track_id=7") == names[::-1]
    assert listed("&since=2026-12-01T11:00:30Z") == [names[2], names[1]]  # ended after it
    assert listed(f"&until={1_796_119_200 + 30}") == [names[0]]  # began before it (and ends after)
    assert listed("&since=2026-12-01T10:30:00&until=2026-12-01T11:30:00") == [names[1]]  # no zone: UTC
    assert listed("&limit=2") == names[:0:-1]
    clip = json.loads(get(f"{base}/api/clips?token={TOKEN}&limit=1")[2])["clips"][0]
    assert clip["url"] == f"/clips/{names[2]}.mp4" and clip["thumbnail_url"] == f"/clips/{names[2]}.jpg"
    for bad in ("&limit=0", "&track_id=x", "&since=yesterday"):
        status, _, body = get(f"{base}/api/clips?token={TOKEN}{bad}")
        assert status == 400 and len(json.loads(body)["error"].splitlines()) == 1, bad


def test_clips_need_the_token(stored_clips):
    base, names = stored_clips
    assert get(f"{base}/api/clips")[0] == 401 and get(f"{base}/clips/{names[0]}.mp4")[0] == 401
    assert get(f"{base}/clips/{names[0]}.mp4", Authorization=f"Bearer {TOKEN}")[0] == 200


def test_clips_are_not_served_with_privacy_on(tmp_path):
    settings = load_settings(str(pet_pipeline(tmp_path, "cats", track={})), None, [
        "camera.source=pattern", f"clips.dir={tmp_path / 'clips'}", "http.enabled=true", f"http.port={free_port()}",
        "privacy.labels=[person]"])
    name = "20261201-100000-000Z_cam0"
    stored(tmp_path / "clips" / settings.device.camera.name, name, ["person"], [1], 0, 60)  # made before privacy
    http = HttpPublisher(settings.device.http)
    http.start(PublishContext(settings, Stats(), settings.pipeline.publish))
    try:
        base = f"http://127.0.0.1:{http.port}"
        assert get(f"{base}/api/clips")[0] == 403 and get(f"{base}/clips/{name}.mp4")[0] == 403
    finally:
        http.close(time.monotonic() + 5)


def test_the_planner_names_a_clip_only_for_the_objects_in_one(tmp_path):
    """A dog (not of clips.labels) gets no URL; a cat's events all carry one; without an address of its own the
    URL is a path from the server's root."""
    settings = load_settings(str(pet_pipeline(tmp_path, "cats", track={})), None, [
        "camera.source=pattern", "http.enabled=true", "http.bind=0.0.0.0", f"http.token={TOKEN}"])
    planner = ClipPlanner(ClipsConfig(enabled=True, labels=sorted(CAT_BREEDS)), PacketRing(1), tmp_path, "cam0",
                          url_base(settings.device.http))

    def event(kind: str, track_id: int, label: str) -> ObjectEvent:
        return ObjectEvent(kind, track_id, label, 0.9, (0, 0, 9, 9), (), 100.0, 101.0 if kind == END else None,
                           False)

    new = planner.plan([event(NEW, 1, "dog"), event(NEW, 2, "Bengal")], 100.5)
    end = planner.plan([event(END, 1, "dog"), event(END, 2, "Bengal")], 101.5)
    assert [e.clip_url for e in new + end][::2] == [None, None]
    assert new[1].clip_url == end[1].clip_url and str(new[1].clip_url).startswith("/clips/")
    assert "clip_url" not in new[0].as_dict() and new[1].as_dict()["clip_url"] == new[1].clip_url


def test_the_recorder_makes_the_clips_the_planner_named_while_it_runs_behind(tmp_path):
    """The planner runs on each frame's events as they come (the output lane), the recorder LAG frames behind (its
    worker), the ring fed meanwhile: each object's events name the clip (the sidecar) that holds it. Object 3 is
    first seen within 2's post-roll and joins its clip, though the ring holds packets past that post-roll by the
    time the recorder takes 3's first event. 4's first event comes in the frame whose packets pass 3's post-roll (the
planner closed the clip there): 4 has a clip of its own, which the recorder begins on ending the other. 5 comes
long after and has a clip of its own."""
    lives = {1: (5, 10), 2: (9, 14), 3: (14.8, 17), 4: (18.1, 20), 5: (40, 42)}  # track id: first, last seen (s)
    camera = FedRing(make_h264(tmp_path / "camera.mp4", 50, 99, 99), keep_s=9)
    config = ClipsConfig(enabled=True, pre_roll_s=2, post_roll_s=2)
    planner = ClipPlanner(config, camera.ring, tmp_path, "cam")
    written: list[Path] = []
    recorder = Recorder(config, camera.ring, tmp_path, "cam", written.append,
                        lambda what, exc: pytest.fail(f"{what}: {exc}"), planner=planner)
    moments = {round(first + 1, 1): (NEW, track) for track, (first, _) in lives.items()}
    moments.update({round(last + 1, 1): (END, track) for track, (_, last) in lives.items()})
    behind: deque[tuple[list[ObjectEvent], float, int | None]] = deque()
    named: dict[int, set[str | None]] = {}
    for frame in range(50 * FPS):
        now = frame / FPS
        camera.feed(now)
        events = []
        if now in moments:
            kind, track = moments[now]
            first, last = lives[track]
            events = [ObjectEvent(kind, track, "Bengal", 0.9, (0, 0, 9, 9), (), first, last if kind == END else None,
                                  False)]
        planned = planner.plan(events, now)
        for event in planned:
            named.setdefault(event.track_id, set()).add(planned_clip(event))
        behind.append((planned, now, planner.head))
        if len(behind) > LAG:
            recorder.take(*behind.popleft())
            recorder.pump()
    while behind:
        recorder.take(*behind.popleft())
    recorder.close()
    sidecars = [json.loads(path.with_suffix(".json").read_text()) for path in written]
    assert [sidecar["track_ids"] for sidecar in sidecars] == [[1, 2, 3], [4], [5]]
    for sidecar in sidecars:
        assert all(named[track] == {sidecar["video"].removesuffix(".mp4")} for track in sidecar["track_ids"])


