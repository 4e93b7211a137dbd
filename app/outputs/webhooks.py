"""Webhooks: every event POSTed as JSON to each configured URL (Home Assistant, Node-RED, ntfy, a script).

Owns a delivery of the event documents (`event_document` for counts, `object_document` for tracked objects: the
ones MQTT publishes too) that
never holds up the output lane: each URL has its own Outbox (bounded, one worker thread), so a slow or
dead receiver delays neither the pipeline nor the other receivers; when an outbox is full the oldest event goes,
counted. Connection errors and 5xx are retried with doubling backoff; a 4xx is not (asking again will not change
the answer). The standard library's urllib only: one POST does not justify a dependency on the device.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import urllib.request
from collections.abc import Iterator
from http.client import HTTPException
from urllib.error import HTTPError
from urllib.parse import urlsplit

from app import __version__
from app.config import WebhooksConfig
from app.metrics import Stats
from app.outputs.outbox import Outbox
from app.outputs.base import Output, PublishContext, Publisher, event_document, object_document
from app.redact import mask_secrets
from app.scene.tracker import ObjectEvent

log = logging.getLogger(__name__)

FIRST_RETRY_DELAY_S = 0.5
HEADERS = {"Content-Type": "application/json", "User-Agent": f"smartcam/{__version__}"}


def post(url: str, body: bytes, timeout: float) -> None:
    """POST `body` as JSON; raise on a connection error, a timeout or a status other than 2xx."""
    request = urllib.request.Request(url, body, HEADERS, method="POST")
    with urllib.request.urlopen(request, timeout=timeout):
        pass


def retryable(exc: Exception) -> bool:
    """Connection errors and server errors may pass; a client error (4xx) will not."""
    return not (isinstance(exc, HTTPError) and exc.code < 500)


def describe(exc: Exception) -> str:
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    return str(getattr(exc, "reason", None) or exc)


class Sender:
    """One URL's Outbox and the delivery its worker does."""

    def __init__(self, url: str, name: str, config: WebhooksConfig, stats: Stats) -> None:
        self.url = url
        self.name = name  # for logs: the URL may hold a secret
        self.config = config
        self.stats = stats
        self._stopped = threading.Event()  # the stop budget is spent: no more retries
        # lossy even for files: a dead receiver must not hold every frame for its timeouts and retries
        self._outbox: Outbox[bytes] = Outbox("webhook", config.queue_size, False,
                                              lambda: stats.drop("webhook_queue"), self._run)

    def put(self, body: bytes) -> None:
        self._outbox.put(body)

    def stop(self, deadline: float) -> None:
        """Deliver what is queued until `deadline` (monotonic), then give up on what is left, counted."""
        unsent = self._outbox.close(deadline)
        self._stopped.set()
        if unsent:
            log.warning("webhook %s: %d events not sent before shutdown", self.name, unsent)
            self.stats.drop("webhook_queue", unsent)

    def _run(self, bodies: Iterator[bytes]) -> None:
        for body in bodies:
            self._deliver(body)

    def _deliver(self, body: bytes) -> None:
        delay = FIRST_RETRY_DELAY_S
        for attempt in itertools.count():
            try:
                post(self.url, body, self.config.timeout_s)
                return
            except (OSError, HTTPException) as exc:
                if not retryable(exc) or attempt >= self.config.retries or self._stopped.wait(delay):
                    log.warning("webhook %s failed: %s (attempts: %d)", self.name,
                                mask_secrets(describe(exc), self.url), attempt + 1)
                    self.stats.drop("webhook_failed")
                    return
            delay *= 2


class WebhookPublisher(Publisher):
    section = "webhooks"
    def __init__(self, config: WebhooksConfig) -> None:
        self.config = config
        self._ctx: PublishContext  # set by start()
        self._senders: list[Sender] = []

    def start(self, ctx: PublishContext) -> None:
        self._ctx = ctx
        self._senders = [Sender(url, f"urls[{i}] ({urlsplit(url).hostname})", self.config, ctx.stats)
                         for i, url in enumerate(self.config.urls)]

    def publish(self, out: Output) -> None:
        self._send([*(event_document(event, out, self._ctx) for event in out.events),
                    *(object_document(event, self._ctx) for event in out.objects)])

    def finish(self, objects: list[ObjectEvent]) -> None:
        self._send([object_document(event, self._ctx) for event in objects])

    def _send(self, documents: list[dict]) -> None:
        for document in documents:
            body = json.dumps(document, separators=(",", ":")).encode()
            for sender in self._senders:
                sender.put(body)

    def close(self, deadline: float) -> None:
        """Give the senders until `deadline`, together, to deliver what they hold."""
        for sender in self._senders:
            sender.stop(deadline)
