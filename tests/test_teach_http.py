"""Teach on the HTTP output, with the real models (YOLOv8n tracked, MobileNet v2 cut at its pooled features):
`/api/similar?track=ID` ranks the camera's recent tracks by cosine with one of them, behind the same auth."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2

from app.config import Settings, load_settings
from app.metrics import Stats
from app.outputs.base import PublishContext
from app.outputs.http import HttpPublisher
from conftest import IMAGES, imread
from http_client import request
from teach_helpers import Run, embedder_fixture, ended, pipeline_fixture, teach  # noqa: F401 (fixtures)

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
