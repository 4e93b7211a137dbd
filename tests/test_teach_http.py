"""Teach on the HTTP output, with the real models (YOLOv8n tracked, MobileNet v2 cut at its pooled features):
`/api/similar?track=ID` ranks the camera's recent tracks by cosine with one of them, and `POST /api/teach` ("teach
this" on the live page) names a track in view or a snapshot, or says it is not what the detector thinks, applied
from the run's next frames; both behind the same auth."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2

from app.config import Settings, load_settings
from app.metrics import Stats
from app.outputs.base import PublishContext
from app.outputs.http import HttpPublisher
from app.outputs.snapshots import snapshot_name
from app.pipeline import Pipeline
from app.teach.from_snapshot import snapshot_label
from app.teach.gallery import load_gallery
from browser import page_value
from conftest import IMAGES, Background, Collector, imread, wait_for
from http_client import request
from teach_helpers import Run, embedder_fixture, ended, pan, pipeline_fixture, teach  # noqa: F401 (fixtures)

TOKEN = "s3cret-token"


def settings_of(pipeline: Path, gallery: Path, *overrides: str) -> Settings:
    return load_settings(str(pipeline), None, [f"teach.gallery={gallery}", "http.enabled=true", "http.port=0",
                                               f"http.token={TOKEN}", *overrides])


@contextmanager
def http_output(settings: Settings) -> Iterator[HttpPublisher]:
    """The HTTP output of `settings` listening on a free port, without a pipeline."""
    server = HttpPublisher(settings.device.http)
    server.start(PublishContext(settings, Stats(), settings.pipeline.publish))
    try:
        yield server
    finally:
        server.close(time.monotonic() + 5)


def asked(server: HttpPublisher, path: str, token: str = TOKEN) -> tuple[int, dict]:
    assert server.port is not None
    status, _, body = request(server.port, path, {"Authorization": f"Bearer {token}"})
    return status, json.loads(body)


def test_similar_ranks_her_other_track_first_by_cosine_and_refuses_in_one_line(tmp_path, pipeline):
    """grace taught; the camera sees grace_hopper.bmp, then her photo mirrored and cut (its lower right 85%), then
    cat_720p.jpg and kite_and_cold.jpg, each track ending (kept in the store by the crop stage). Her first track's
    look-alikes: her second first, named grace, by a clear margin over the cat and the kite's people, each with its
    cosine. An unknown track is a 404, a wrong `top` a 400, each one line; without the token, 401."""
    gallery = tmp_path / "gallery.json"
    teach(gallery, pipeline, "grace", IMAGES / "grace_hopper.bmp", "--label", "person")
    run = Run(pipeline, gallery)
    photo = imread(IMAGES / "grace_hopper.bmp")
    height, width = photo.shape[:2]
    other_view = cv2.flip(photo[height * 15 // 100:, width * 15 // 100:], 1)
    (first,), (second,) = ([track for track in ended(run, [image] * 6) if track[0] == "person"]
                           for image in (photo, other_view))
    others = [track for name in ("cat_720p.jpg", "kite_and_cold.jpg")
              for track in ended(run, [imread(IMAGES / name)] * 6)]
    with http_output(settings_of(pipeline, gallery)) as server:
        status, found = asked(server, f"/api/similar?track={first[1]}&top=4")
        assert status == 200, found
        print(json.dumps(found, indent=1))
        assert (found["track"]["track_id"], found["track"]["name"]) == (first[1], "grace")
        similar = found["similar"]
        assert len(similar) == 4 and [s["cosine"] for s in similar] == sorted((s["cosine"] for s in similar),
                                                                               reverse=True)
        assert (similar[0]["track_id"], similar[0]["label"], similar[0]["name"]) == (second[1], "person", "grace")
        assert similar[0]["cosine"] > similar[1]["cosine"] + 0.1
        assert {(s["label"], s["track_id"]) for s in similar[1:]} <= set(others)
        missing = max(track_id for _, track_id in others) + 1
        for path, code, line in ((f"/api/similar?track={missing}", 404, f"track {missing} is not among the"),
                                 (f"/api/similar?track={first[1]}&top=0", 400, "top must be a whole number"),
                                 ("/api/similar", 400, "track must be a whole number")):
            status, refused = asked(server, path)
            assert status == code and line in refused["error"] and "\n" not in refused["error"], refused
        assert asked(server, f"/api/similar?track={first[1]}", token="wrong")[0] == 401


def posted(port: int, body: object, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """POST `body` as JSON (a bytes body as is) with the token, unless `headers` say otherwise."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", "/api/teach", data, headers if headers is not None else {
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def persons_after(collector: Collector, count: int) -> list[dict]:
    """The person detections of the frames that reached the outputs after the first `count`."""
    return [d for result in collector.results[count:] for d in result["detections"] if d["label"] == "person"]


def test_teach_this_names_her_track_in_view_then_a_not_drops_it(tmp_path, pipeline):
    """A camera on grace_hopper.bmp, nothing taught (no gallery yet). POST {her track, name: grace}: the gallery
    holds her example and the frames after carry name grace, without a reload; POST {her track, not: true} (the same
    view: it replaces the name) and the frames after have no person, counted as taught_not. Refused in one line
    each: a GET, a body that is not JSON, a wrong name, a track not in view, no token, not JSON's content type."""
    gallery = tmp_path / "gallery.json"
    settings = settings_of(pipeline, gallery, f"camera.source={IMAGES / 'grace_hopper.bmp'}", "camera.loop=true")
    server, collector = HttpPublisher(settings.device.http), Collector()
    with Background(Pipeline(settings, [server, collector])) as run:
        port = wait_for(lambda: server.port, "the HTTP server to listen", 30)
        her = wait_for(lambda: next((d["track_id"] for d in persons_after(collector, 0)
                                     if d.get("track_id") is not None), None), "her track", 30)
        status, answer = posted(port, {"track_id": her, "name": "grace"})
        assert (status, answer["taught"], answer["label"]) == (200, "grace", "person"), answer
        assert [(e.name, e.label, e.positive) for e in load_gallery(gallery, None).examples] == [
            ("grace", "person", True)]
        taught_at = collector.count + 1  # the frame the outputs had may be followed by one judged before the POST
        wait_for(lambda: len(persons_after(collector, taught_at)) >= 5, "five frames after", 30)
        assert {(d["track_id"], d.get("name")) for d in persons_after(collector, taught_at)} == {(her, "grace")}
        status, answer = posted(port, {"track_id": her, "not": True})
        assert (status, answer["taught"]) == (200, "not a person"), answer
        assert [(e.name, e.positive) for e in load_gallery(gallery, None).examples] == [("not:person", False)]
        not_at = collector.count + 1
        wait_for(lambda: collector.count >= not_at + 5, "five frames after", 30)
        assert persons_after(collector, not_at) == []
        assert run.pipeline.stats.document()["detections_dropped"]["taught_not"] >= 5
        refused = [
            (posted(port, b"{not json"), 400, "the body is not JSON"),
            (posted(port, {"track_id": her, "name": "a/b"}), 400, "name to teach"),
            (posted(port, {"track_id": 999, "name": "bob"}), 404, "track 999 is not in the newest frame"),
            (posted(port, {"track_id": her, "name": "bob"}, {"Content-Type": "application/json"}), 401,
             "authentication required"),
            (posted(port, {"track_id": her, "name": "bob"}, {"Authorization": f"Bearer {TOKEN}",
                                                              "Content-Type": "text/plain"}), 415, "application/json"),
        ]
        for (status, answer), code, line in refused:
            assert status == code and line in answer["error"] and "\n" not in answer["error"], answer
        status, _, body = request(port, "/api/teach", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 405 and b"POST" in body
    assert [(e.name, e.positive) for e in load_gallery(gallery, None).examples] == [("not:person", False)]


def test_teach_this_on_a_snapshot_names_her_in_a_pan_and_refuses_in_one_line(tmp_path, pipeline):
    """grace_hopper.bmp written in the snapshots folder as a person snapshot of this camera; POST {that snapshot,
    name: grace}: the gallery holds her (label person, from the file name), and a pan over her photo names her.
    Refused in one line each: a snapshot not there (404), a path out of the folder (404, though the file is there),
    a snapshot whose label the detector does not find in it (cat_720p.jpg as a person: 422)."""
    gallery, folder = tmp_path / "gallery.json", tmp_path / "snapshots"
    settings = settings_of(pipeline, gallery, f"snapshots.dir={folder}")
    folder.mkdir()
    camera = settings.device.camera.name
    her, cat, missing, outside = (snapshot_name(ts, camera, "person") for ts in (1.0e9, 1.1e9, 1.2e9, 1.3e9))
    for name, image in ((her, "grace_hopper.bmp"), (cat, "cat_720p.jpg"), (f"../{outside}", "grace_hopper.bmp")):
        cv2.imwrite(str(folder / name), imread(IMAGES / image))
    with http_output(settings) as server:
        assert server.port is not None
        status, answer = posted(server.port, {"snapshot": her, "name": "grace"})
        assert (status, answer["taught"], answer["label"], answer["snapshot"]) == (200, "grace", "person", her), answer
        refused = [
            (posted(server.port, {"snapshot": missing, "name": "bob"}), 404, "no snapshot"),
            (posted(server.port, {"snapshot": f"../{outside}", "not": True}), 404, "no snapshot"),
            (posted(server.port, {"snapshot": cat, "name": "bob"}), 422, "the detector finds no person in it"),
        ]
    for (status, answer), code, line in refused:
        assert status == code and line in answer["error"] and "\n" not in answer["error"], answer
    assert [(e.name, e.label, e.positive) for e in load_gallery(gallery, None).examples] == [("grace", "person", True)]
    frames = Run(pipeline, gallery).frames(pan(imread(IMAGES / "grace_hopper.bmp"), keep=0.8))
    persons = [d for frame in frames for d in frame.detections if d.label == "person"]
    named = [d for d in persons if d.attributes.get("name") == "grace"]
    print(f"named grace after teaching her snapshot: {len(named)}/{len(persons)} person detections")
    assert persons and len(named) >= 0.95 * len(persons)


def test_a_snapshots_label_is_the_detectors_label_it_spells():
    """The label in a snapshot's name is the detector's label spelled so (a space is a `_` in a file name); a
    name not of this camera has none."""
    name = snapshot_name(0.0, "front door", "traffic light")
    assert snapshot_label(name, "front door", ["person", "traffic light"]) == "traffic light"
    assert snapshot_label(snapshot_name(0.0, "front door", "person"), "front door", ["traffic light"]) == "person"
    assert snapshot_label(name, "back door", ["traffic light"]) is None


#: in the live page, every 0.2 s: once a detection (LIST: #detections) or a snapshot (#snapshots) has its teach
#: button, choose it, type grace and press "this is"; then the line the page shows for the answer
TEACH_ON_THE_PAGE = """(() => {
  const result = document.getElementById('teach-result').textContent;
  if (result && result !== 'teaching…') return result;
  const button = document.querySelector('LIST button.teach');
  if (button && document.getElementById('teach-section').hidden) {
    button.click();
    document.getElementById('teach-name').value = 'grace';
    document.getElementById('teach-is').click();
  }
  return null;
})()"""


def test_the_live_page_teaches_a_detection_with_its_cookie(tmp_path, pipeline):
    """In Chromium, the page opened with ?token= (its cookie then authorizes the page's requests): a person's teach
    button, the name grace, "this is": the page says so and the gallery holds her."""
    gallery = tmp_path / "gallery.json"
    settings = settings_of(pipeline, gallery, f"camera.source={IMAGES / 'grace_hopper.bmp'}", "camera.loop=true")
    server = HttpPublisher(settings.device.http)
    with Background(Pipeline(settings, [server])):
        port = wait_for(lambda: server.port, "the HTTP server to listen", 30)
        said = page_value(f"http://127.0.0.1:{port}/?token={TOKEN}", tmp_path,
                          TEACH_ON_THE_PAGE.replace("LIST", "#detections"), lambda value: isinstance(value, str),
                          timeout=60)
    assert isinstance(said, str) and re.fullmatch(r"taught: #\d+ is grace", said), said
    assert [(e.name, e.label) for e in load_gallery(gallery, None).examples] == [("grace", "person")]


def test_the_pages_snapshot_list_teaches_a_snapshot(tmp_path, pipeline):
    """In Chromium, no camera running: the page lists the snapshot of grace_hopper.bmp by name with a teach button;
    the name grace, "this is": the page says so and the gallery holds her."""
    gallery, folder = tmp_path / "gallery.json", tmp_path / "snapshots"
    settings = settings_of(pipeline, gallery, f"snapshots.dir={folder}")
    folder.mkdir()
    her = snapshot_name(1.0e9, settings.device.camera.name, "person")
    cv2.imwrite(str(folder / her), imread(IMAGES / "grace_hopper.bmp"))
    with http_output(settings) as server:
        said = page_value(f"http://127.0.0.1:{server.port}/?token={TOKEN}", tmp_path,
                          TEACH_ON_THE_PAGE.replace("LIST", "#snapshots"), lambda value: isinstance(value, str),
                          timeout=60)
    assert said == f"taught: {her} is grace", said
    assert [(e.name, e.label) for e in load_gallery(gallery, None).examples] == [("grace", "person")]
