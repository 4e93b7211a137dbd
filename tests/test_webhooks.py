"""Webhooks: real runs POST their events to a real HTTP server on 127.0.0.1 — the event document with the result,
retries on server errors but not client errors, and a slow or dead receiver never holds up the run."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest

from app import __version__
from app.config import load_settings
from app.errors import ConfigError
from app.pipeline import Pipeline
from app.publishers import build_publishers
from app.publishers.base import Publisher
from conftest import IMAGES
from test_snapshots import Events, alternating_folder, cat_settings

HELD_S = 2.0


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers with `statuses` in turn, then 200.

    `slow`: each request is held for HELD_S seconds, or until `release` is set.
    """

    def __init__(self, statuses: tuple[int, ...] = (), slow: bool = False) -> None:
        self.requests: list[tuple[str, dict, dict]] = []  # (path, headers, JSON body)
        self.release = threading.Event()
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    receiver.requests.append((self.path, dict(self.headers), body))
                    status = statuses[len(receiver.requests) - 1] if len(receiver.requests) <= len(statuses) else 200
                if slow:
                    receiver.release.wait(HELD_S)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def bodies(self) -> list[dict]:
        return [body for _, _, body in self.requests]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    started: list[Receiver] = []

    def start(statuses: tuple[int, ...] = (), slow: bool = False) -> Receiver:
        started.append(Receiver(statuses, slow))
        return started[-1]

    yield start
    for one in started:
        one.close()


class AtClose(Publisher):
    """Runs `action` when the run ends, before the publishers listed after this one close."""

    def __init__(self, action: Callable[[], object]) -> None:
        self.action = action

    def publish(self, out) -> None:
        pass

    def close(self) -> None:
        self.action()


def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


def hook_settings(tmp_path, source, urls: list[str], *overrides: str):
    return cat_settings(tmp_path, f"camera.source={source}", "snapshots.enabled=false", "webhooks.enabled=true",
                        f"webhooks.urls={json.dumps(urls)}", *overrides)


def expected_documents(events: Events) -> list[dict]:
    return [{"type": e.kind, "label": e.label, "count": e.count, "previous": e.previous, "camera": "cam0",
             "pipeline": "cats", "result": json.loads(json.dumps(result))} for e, result in events.seen]


def test_events_arrive_as_json_with_the_result(tmp_path, cat_clip, receiver):
    hook = receiver()
    settings = hook_settings(tmp_path, cat_clip, [hook.url])
    events = Events()
    Pipeline(settings, [events, *build_publishers(settings)]).run()

    assert events.seen and eventually(lambda: len(hook.requests) >= len(events.seen))
    assert hook.bodies() == expected_documents(events)
    path, headers, _ = hook.requests[0]
    assert path == "/hook"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == f"smartcam/{__version__}"


def test_a_server_error_is_retried_with_backoff_until_it_passes(tmp_path, receiver):
    hook = receiver(statuses=(500, 500))
    settings = hook_settings(tmp_path, IMAGES / "cat.bmp", [hook.url], "webhooks.retries=3")
    events = Events()
    wait = AtClose(lambda: eventually(lambda: len(hook.requests) >= 3))
    started = time.monotonic()
    stats = Pipeline(settings, [events, wait, *build_publishers(settings)]).run()

    assert len(hook.requests) == 3
    assert hook.bodies() == expected_documents(events) * 3
    assert time.monotonic() - started >= 0.5 + 1.0  # backoff 0.5 s, then 1 s
    assert not stats.drops["webhook_failed"]


def test_a_client_error_is_not_retried(tmp_path, receiver):
    hook = receiver(statuses=(404,) * 20)
    settings = hook_settings(tmp_path, alternating_folder(tmp_path, cats=3), [hook.url], "webhooks.retries=3")
    events = Events()
    stats = Pipeline(settings, [events, *build_publishers(settings)]).run()

    assert len(events.seen) == 5  # appeared, cleared, appeared, cleared, appeared
    assert eventually(lambda: stats.drops["webhook_failed"] == 5)
    assert len(hook.requests) == 5


def test_a_receiver_that_is_down_neither_stalls_the_run_nor_the_other_receivers(tmp_path, cat_clip, receiver):
    hook = receiver()
    settings = hook_settings(tmp_path, cat_clip, [closed_port_url(), hook.url], "webhooks.retries=3")
    events = Events()
    started = time.monotonic()
    stats = Pipeline(settings, [events, *build_publishers(settings)]).run()

    assert stats.processed == 90
    assert time.monotonic() - started < 10  # blocking on it: 3.5 s of backoff for each of the events
    assert hook.bodies() == expected_documents(events)
    # every event to the dead URL is accounted for: failed after its retries, or unsent at shutdown
    assert eventually(lambda: stats.drops["webhook_failed"] + stats.drops["webhook_queue"] == len(events.seen))
    assert stats.drops["webhook_failed"] >= 1


def test_a_slow_receiver_with_a_small_queue_loses_the_oldest_events_counted(tmp_path, receiver):
    hook = receiver(slow=True)
    settings = hook_settings(tmp_path, alternating_folder(tmp_path, cats=5), [hook.url], "webhooks.queue_size=2")
    events = Events()
    stats = Pipeline(settings, [events, AtClose(hook.release.set), *build_publishers(settings)]).run()

    assert len(events.seen) == 9
    expected = expected_documents(events)
    delivered = hook.bodies()
    assert len(delivered) in (2, 3)  # perhaps the first (taken before the queue filled), then the newest two
    assert delivered[-2:] == expected[-2:]
    assert stats.drops["webhook_queue"] == len(expected) - len(delivered)
    assert not stats.drops["webhook_failed"]


@pytest.mark.parametrize("urls", ["[]", "[ftp://example.com/hook]", "[example.com/hook]"])
def test_urls_that_can_never_work_are_refused_by_validation(urls):
    with pytest.raises(ConfigError, match="webhooks.urls: .*(empty|not an http)"):
        load_settings("detect", None, ["webhooks.enabled=true", f"webhooks.urls={urls}"])
