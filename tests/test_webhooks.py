"""Webhooks: real runs POST their events to a real HTTP server on 127.0.0.1 — the event document with the result,
retries on server errors but not client errors, and a slow or dead receiver never holds up the run."""

from __future__ import annotations

import json
import time

import pytest

from app import __version__
from app.config import load_settings
from app.errors import ConfigError
from app.pipeline import Pipeline
from app.outputs import build_publishers
from conftest import IMAGES, Collector, alternating_folder, cat_settings, free_port, wait_for
from webhook_receiver import Receiver

@pytest.fixture
def receiver():
    started: list[Receiver] = []

    def start(statuses: tuple[int, ...] = (), slow: bool = False) -> Receiver:
        started.append(Receiver(statuses, slow))
        return started[-1]

    yield start
    for one in started:
        one.close()


def hook_settings(tmp_path, source, urls: list[str], *overrides: str):
    return cat_settings(tmp_path, f"camera.source={source}", "snapshots.enabled=false", "webhooks.enabled=true",
                        f"webhooks.urls={json.dumps(urls)}", *overrides)


def expected_documents(events: Collector) -> list[dict]:
    return [{"type": e.kind, "label": e.label, "count": e.count, "previous": e.previous, "camera": "cam0",
             "pipeline": "cats", "result": json.loads(json.dumps(result))} for e, result in events.events]


def test_events_arrive_as_json_with_the_result(tmp_path, cat_clip, receiver):
    hook = receiver()
    settings = hook_settings(tmp_path, cat_clip, [hook.url])
    events = Collector()
    Pipeline(settings, [events, *build_publishers(settings)]).run()

    assert events.events
    wait_for(lambda: len(hook.requests) >= len(events.events), "a request per event")
    assert hook.bodies() == expected_documents(events)
    path, headers, _ = hook.requests[0]
    assert path == "/hook"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == f"smartcam/{__version__}"


def test_a_server_error_is_retried_with_backoff_until_it_passes(tmp_path, receiver):
    hook = receiver(statuses=(500, 500))
    settings = hook_settings(tmp_path, IMAGES / "cat.bmp", [hook.url], "webhooks.retries=3")
    events = Collector()
    wait = Collector(at_close=lambda: wait_for(lambda: len(hook.requests) >= 3, "the two retries", 4))
    started = time.monotonic()
    stats = Pipeline(settings, [events, wait, *build_publishers(settings)]).run()

    assert len(hook.requests) == 3
    assert hook.bodies() == expected_documents(events) * 3
    assert time.monotonic() - started >= 0.5 + 1.0  # backoff 0.5 s, then 1 s
    assert not stats.drops["webhook_failed"]


def test_a_client_error_is_not_retried(tmp_path, receiver):
    hook = receiver(statuses=(404,) * 20)
    settings = hook_settings(tmp_path, alternating_folder(tmp_path, cats=3), [hook.url], "webhooks.retries=3")
    events = Collector()
    stats = Pipeline(settings, [events, *build_publishers(settings)]).run()

    assert len(events.events) == 5  # appeared, cleared, appeared, cleared, appeared
    wait_for(lambda: stats.drops["webhook_failed"] == 5, "five failed deliveries")
    assert len(hook.requests) == 5


def test_a_receiver_that_is_down_neither_stalls_the_run_nor_the_other_receivers(tmp_path, cat_clip, receiver):
    """Against the same run without the dead receiver, made first: the dead one costs the output lane nothing it
    can see (blocking on it: 3.5 s of backoff for each event) and the whole run at most the close's budget for it."""

    def run(urls: list[str]):
        before, after = Collector(), Collector()  # on either side of the webhook publisher in the output lane
        settings = hook_settings(tmp_path, cat_clip, urls, "webhooks.retries=3")
        started = time.monotonic()
        stats = Pipeline(settings, [before, *build_publishers(settings), after]).run()
        slowest = max(t1 - t0 for t0, t1 in zip(before.times, after.times, strict=True))
        return stats, before, time.monotonic() - started, slowest

    baseline_hook = receiver()
    _, baseline_events, baseline_s, baseline_slowest = run([baseline_hook.url])
    assert baseline_hook.bodies() == expected_documents(baseline_events)

    hook = receiver()
    stats, events, run_s, slowest = run([f"http://127.0.0.1:{free_port()}/hook", hook.url])
    assert stats.processed == 90 and events.events
    assert slowest <= 2 * baseline_slowest + 2, (slowest, baseline_slowest)  # >= 3.5 s if it waited for delivery
    assert run_s <= 2 * baseline_s + 5, (run_s, baseline_s)
    assert hook.bodies() == expected_documents(events)
    # every event to the dead URL is accounted for: failed after its retries, or unsent at shutdown
    wait_for(lambda: stats.drops["webhook_failed"] + stats.drops["webhook_queue"] == len(events.events),
             "every event to the dead URL failed or counted unsent")
    assert stats.drops["webhook_failed"] >= 1


def test_a_slow_receiver_with_a_small_queue_loses_the_oldest_events_counted(tmp_path, receiver):
    hook = receiver(slow=True)
    settings = hook_settings(tmp_path, alternating_folder(tmp_path, cats=5), [hook.url], "webhooks.queue_size=2",
                             "webhooks.timeout_s=120")  # held until the run ends, however long the run takes
    events = Collector()
    stats = Pipeline(settings, [events, Collector(at_close=hook.release.set), *build_publishers(settings)]).run()

    assert len(events.events) == 9
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
