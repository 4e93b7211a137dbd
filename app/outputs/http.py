"""HTTP: the live page, the MJPEG stream, the latest result, stats, health, Prometheus metrics, snapshot files,
event clips, look-alike tracks (/api/similar, app/teach/similar.py) and "teach this" (POST /api/teach,
app/teach/live.py: the only route that takes a POST, with a JSON body, so a cross-site form cannot send it).

Standard library only (`http.server`), one thread per connection, all daemons, so the camera needs no web
framework. It owns three promises:

- It never slows the pipeline. `publish` keeps a reference to the newest Output and, only while someone watches
  `/stream.mjpg`, encodes at most `stream.max_fps` JPEGs a second into one latest-JPEG slot. A new stream client
  gets the newest processed frame at once (encoded in its own thread), then each client's thread waits for a frame
  newer than the one it sent; a slow client skips frames, and one that takes more than
  `send_timeout_s` to accept a frame is dropped and counted. `/snapshot.jpg` encodes on request, in the
  requester's thread.
- Nothing leaves the snapshots or clips folder: a file name is decoded once, must match a plain `NAME.jpg` pattern
  (a clip's: its name as app/clips names it, `.mp4` or `.jpg`, listed by its sidecar), and its resolved path must
  sit directly in the folder; anything else is a 404 that says nothing more. A clip's files are streamed in chunks
  with HTTP range requests (206, 416 past the end), so a browser's `<video>` seeks; none is served while privacy is
  on (a clip is the camera's own video, unmasked).
- With `http.token` or `http.username`/`password` set, everything but `/healthz` needs them (a Bearer header,
  `?token=`, the cookie `/?token=` sets for the page's image and fetches, or HTTP Basic), compared in constant
  time. Binding beyond loopback without either is refused by the config schema.

A port still held (the previous process stopping) or an address not up yet is waited for in a thread, retried
every LISTEN_RETRY_S, while the camera runs; `/healthz` is 503 while the source is not connected, saying its
state and for how long, never its address.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hmac
import json
import logging
import os
import re
import socket
import socketserver
import threading
from collections import deque
import time
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import BinaryIO, NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlsplit

from app.clips.listing import ClipQuery, list_clips
from app.clips.retention import CLIP_NAME
from app.clips.writer import SIDECAR, THUMBNAIL, VIDEO
from app.config import HttpConfig
from app.errors import ConfigError
from app.metrics import is_ok, prometheus_family
from app.outputs.base import Output, PublishContext, Publisher, object_document
from app.outputs.clips import clip_folder
from app.outputs.mask_png import mask_png, segments_of
from app.scene.tracker import ObjectEvent
from app.teach.live import MAX_BODY, LiveTeacher
from app.teach.similar import similar_document

log = logging.getLogger(__name__)

#: the tracked objects' events /api/latest keeps, newest first
OBJECTS_SHOWN = 20
#: a stream client that cannot take one frame within this long is dropped
SEND_TIMEOUT_S = 10.0
#: how often a stream thread wakes to notice a shutdown when no frames come
STREAM_WAKE_S = 1.0
#: how often a port still in use (or an address not up yet) is tried again; the camera runs meanwhile
LISTEN_RETRY_S = 1.0
BOUNDARY = "frame"
COOKIE = "smartcam_token"
SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\.jpe?g", re.IGNORECASE)
QUERY_TOKEN = re.compile(r"([?&])token=[^&\s]*")  # kept out of the logs
#: a clip's file goes out this much at a time, never read whole
FILE_CHUNK = 64 * 1024
CLIP_TYPES = {VIDEO: "video/mp4", THUMBNAIL: "image/jpeg"}
SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
PAGE_POLICY = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'"


class Response(NamedTuple):
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


def json_response(data: object, status: int = 200) -> Response:
    return Response(status, json.dumps(data, default=str).encode(), "application/json")


def text_response(text: str, status: int = 200) -> Response:
    return Response(status, f"{text}\n".encode(), "text/plain; charset=utf-8")


class Unsatisfiable(ValueError):
    """A range that lies past the file's end (416)."""


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The bytes (first, last) a `Range` header asks of a file of `size` bytes; None: the whole file (no header, or
    one RFC 9110 lets a server ignore: another unit, several ranges, a malformed one). Raises Unsatisfiable for a
    range past the end."""
    found = SINGLE_RANGE.fullmatch((header or "").strip())
    if found is None or found.groups() == ("", ""):
        return None
    first, last = found.groups()
    if not first:  # the last N bytes
        if int(last) == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - int(last)), size - 1
    if last and int(last) < int(first):
        return None
    if int(first) >= size:
        raise Unsatisfiable
    return int(first), min(int(last), size - 1) if last else size - 1


class FrameSlot:
    """The newest stream JPEG and its sequence number; readers wait for one newer than the one they have."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.seq = 0
        self._jpeg = b""
        self._closed = False

    def put(self, jpeg: bytes) -> None:
        with self._cond:
            self.seq += 1
            self._jpeg = jpeg
            self._cond.notify_all()

    def wait_newer(self, seq: int, timeout: float) -> tuple[int, bytes] | None:
        """(seq, jpeg) of a frame newer than `seq`, or None after `timeout` or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self.seq > seq or self._closed, timeout)
            return None if self._closed or self.seq <= seq else (self.seq, self._jpeg)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class HttpPublisher(Publisher):
    section = "http"
    #: class default; a test may lower it on an instance before `start`
    send_timeout_s = SEND_TIMEOUT_S
    ctx: PublishContext  # set by start(), like snapshots_dir
    snapshots_dir: Path

    def __init__(self, config: HttpConfig) -> None:
        self.config = config
        self.page = resources.files(__package__).joinpath("page.html").read_bytes()
        self.frames = FrameSlot()
        #: the bound port once started (the chosen one when http.port is 0)
        self.port: int | None = None
        self.latest: Output | None = None
        #: the newest tracked objects' events, for /api/latest and the page
        self.objects: deque[dict] = deque(maxlen=OBJECTS_SHOWN)
        self.stream_clients = 0
        self.stream_clients_dropped = 0
        self._clients_lock = threading.Lock()
        self._next_encode = 0.0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._waiter: threading.Thread | None = None
        self._waiting_for = ""
        self._closing = threading.Event()
        self._serve_lock = threading.Lock()
        #: "teach this" (POST /api/teach) with an embedder of its own
        self.teacher = LiveTeacher()

    # --- the Publisher interface ---------------------------------------------------------------------------------

    def start(self, ctx: PublishContext) -> None:
        self.ctx = ctx
        self.snapshots_dir = ctx.settings.resolve_path(ctx.settings.device.snapshots.dir)
        ctx.stats.health["http"] = self.health_document
        try:
            self._serve(_listen(self.config, self))
        except _NotYet as exc:  # the port still held, the address not up yet: the camera runs meanwhile
            self._waiting_for = str(exc)
            log.warning("http: %s; waiting for it (trying again every %g s)", exc, LISTEN_RETRY_S)
            self._waiter = threading.Thread(target=self._listen_when_free, name="http-wait", daemon=True)
            self._waiter.start()

    def reconfigure(self, ctx: PublishContext) -> bool:
        """A reload: with its own section unchanged, the server and its stream clients stay and serve the run's new
        settings; else it is replaced."""
        if ctx.settings.device.http != self.config:
            return False
        self.ctx = ctx
        self.snapshots_dir = ctx.settings.resolve_path(ctx.settings.device.snapshots.dir)
        ctx.stats.health["http"] = self.health_document
        return True

    def _listen_when_free(self) -> None:
        while not self._closing.wait(LISTEN_RETRY_S):
            try:
                server = _listen(self.config, self)
            except _NotYet as exc:
                self._waiting_for = str(exc)
                continue
            with self._serve_lock:
                if self._closing.is_set():
                    server.server_close()
                    return
                self._serve(server)
            return

    def _serve(self, server: _Server) -> None:
        self._server = server
        self.port = server.server_address[1]
        self._waiting_for = ""
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="http", daemon=True)
        self._thread.start()
        modes = [name for name, on in (("token", self.config.token),
                                       ("basic", self.config.username and self.config.password)) if on]
        log.info("http: listening on http://%s:%d/ (auth: %s)", self.config.bind, self.port,
                 " or ".join(modes) or "none")

    def health_document(self) -> dict[str, object]:
        """Listening, or waiting for the port or address, and why."""
        if self._server is not None:
            return {"ok": True, "state": "listening", "port": self.port}
        return {"ok": False, "state": "waiting", "last_error": self._waiting_for}

    def publish(self, out: Output) -> None:
        self.latest = out
        self.objects.extend(object_document(event, self.ctx) for event in out.objects)
        if not self.stream_clients:
            return
        now = time.monotonic()
        if now < self._next_encode:
            return
        # keep the max_fps grid when a frame comes a little late; restart it after a gap
        self._next_encode = max(self._next_encode + 1 / self.config.stream.max_fps, now)
        jpeg = out.sendable_jpeg(self.ctx.stats, self.config.stream.width, self.config.stream.quality)
        if jpeg is not None:
            self.frames.put(jpeg)

    def finish(self, objects: list[ObjectEvent]) -> None:
        self.objects.extend(object_document(event, self.ctx) for event in objects)

    def close(self, deadline: float) -> None:
        self.frames.close()
        with self._serve_lock:
            self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(max(0.0, deadline - time.monotonic()))
            self._server = None

    # --- stream clients ------------------------------------------------------------------------------------------

    def stream_opened(self) -> None:
        with self._clients_lock:
            self.stream_clients += 1

    def stream_closed(self, dropped: bool) -> None:
        with self._clients_lock:
            self.stream_clients -= 1
            self.stream_clients_dropped += int(dropped)

    # --- the endpoints that are one response -----------------------------------------------------------------------

    def page_for(self, query_token: str) -> Response:
        """The live page; a valid `?token=` is kept in a cookie, so the page's <img> and fetches need none."""
        headers = [("Content-Security-Policy", PAGE_POLICY)]
        if self.config.token and query_token and _same(query_token, self.config.token):
            headers.append(("Set-Cookie", f"{COOKIE}={quote(query_token, safe='')}; Path=/; HttpOnly; "
                                          "SameSite=Strict"))
        return Response(200, self.page, "text/html; charset=utf-8", tuple(headers))

    def api_latest(self) -> Response:
        out = self.latest
        if out is None:
            return json_response({"error": "no frame processed yet"}, 503)
        return json_response({**out.result, "counts": out.counts, "zones": out.frame.zone_counts,
                              "lines": out.frame.line_counts, "objects": list(reversed(self.objects))})

    def snapshot(self) -> Response:
        out = self.latest
        if out is None:
            return json_response({"error": "no frame processed yet"}, 503)
        jpeg = out.sendable_jpeg(self.ctx.stats, quality=self.config.stream.quality)
        if jpeg is None:
            return json_response({"error": "the latest frame has no privacy mask yet"}, 503)
        return Response(200, jpeg, "image/jpeg")

    def api_mask(self) -> Response:
        """The latest frame's segmentation mask (`app.outputs.mask_png`); 404 when the pipeline does not segment."""
        out = self.latest
        if out is None:
            return json_response({"error": "no frame processed yet"}, 503)
        segments = segments_of(out.frame)
        if segments is None:
            return json_response({"error": f"pipeline {self.ctx.pipeline} has no segmentation model, so no mask: "
                                           "/api/mask.png needs one (kind: segmentation)"}, 404)
        return Response(200, mask_png(segments), "image/png")

    def api_stats(self) -> Response:
        return json_response({
            **self.ctx.stats.document(),
            "stream": {"clients": self.stream_clients, "clients_dropped": self.stream_clients_dropped,
                       "max_fps": self.config.stream.max_fps},
        })

    def health(self) -> Response:
        """`/healthz`, which anyone may ask: states and how long, never the source's address or its error (they can
        name the camera's host, path and credentials: /api/stats and the log say them, masked)."""
        report = self.ctx.stats.health.get("source")
        document = report() if report else None
        if document is not None and not is_ok(document) and document.get("attempts"):  # failed, not just starting
            return text_response(f"source {document['state']}: {document.get('attempts', 0)} failed attempts in "
                                 f"{document.get('for_s', 0)} s (why: /api/stats or the log)", 503)
        last = self.ctx.stats.last_capture
        if last is None:
            return text_response("starting: no frame captured yet", 503)
        age = time.monotonic() - last
        if age > self.config.stall_after_s:
            return text_response(f"stalled: no frame captured for {age:.1f} s", 503)
        return text_response("ok")

    def metrics(self) -> Response:
        text = self.ctx.stats.prometheus()
        text += prometheus_family("smartcam_stream_clients", "gauge", "Clients watching /stream.mjpg.",
                                  [({}, self.stream_clients)])
        slow = f"Stream clients dropped for taking over {self.send_timeout_s:g} s to accept a frame."
        text += prometheus_family("smartcam_stream_clients_dropped_total", "counter", slow,
                                  [({}, self.stream_clients_dropped)])
        return Response(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")

    @property
    def clips_dir(self) -> Path:
        return clip_folder(self.ctx.settings, self.ctx.camera)

    def clips_refused(self) -> Response | None:
        """403 while privacy is on: a clip is the camera's own video, never masked (clips.py refuses both on)."""
        if not self.ctx.settings.device.privacy.enabled:
            return None
        return json_response({"error": "clips are not served while privacy is on (a clip is not masked)"}, 403)

    def api_clips(self, query: dict[str, list[str]]) -> Response:
        """`/api/clips`: the clips of the camera's folder, newest first, filtered (app/clips/listing.py)."""
        try:
            wanted = ClipQuery.parse(query)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        return self.clips_refused() or json_response({"clips": list_clips(self.clips_dir, wanted)})

    def snapshot_list(self) -> Response:
        return json_response({"files": _list_snapshots(self.snapshots_dir)})

    def snapshot_file(self, raw_name: str) -> Response:
        path = _snapshot_path(self.snapshots_dir, raw_name)
        try:
            return Response(200, path.read_bytes(), "image/jpeg") if path else _not_found()
        except OSError:  # deleted by the snapshot rotation in between
            return _not_found()

    # --- auth ------------------------------------------------------------------------------------------------------

    def authorized(self, authorization: str, query_token: str, cookie_token: str) -> bool:
        """Whether a request's credentials match the configured token or username and password."""
        config = self.config
        if not config.has_auth:
            return True
        scheme, _, value = authorization.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if config.token:
            offered = (value if scheme == "bearer" else "", query_token, cookie_token)
            if any(_same(candidate, config.token) for candidate in offered if candidate):
                return True
        if config.username and config.password and scheme == "basic":
            user, password = _basic_credentials(value)
            return _same(user, config.username) & _same(password, config.password)
        return False

    def unauthorized(self) -> Response:
        challenges = []
        if self.config.username and self.config.password:
            challenges.append(("WWW-Authenticate", 'Basic realm="smartcam", charset="UTF-8"'))
        if self.config.token:
            challenges.append(("WWW-Authenticate", 'Bearer realm="smartcam"'))
        body = json.dumps({"error": "authentication required: open /?token=TOKEN, send Authorization: Bearer "
                                    "TOKEN, or sign in with the configured username and password"}).encode()
        return Response(401, body, "application/json", tuple(challenges))


def _same(offered: str, secret: str) -> bool:
    return hmac.compare_digest(offered.encode(), secret.encode())


def _basic_credentials(value: str) -> tuple[str, str]:
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, password


def _not_found() -> Response:
    return json_response({"error": "not found"}, 404)


def _file_in(folder: Path, name: str) -> Path | None:
    """The file `name` (decoded) directly inside `folder`, or None."""
    if any(bad in name for bad in ("/", "\\", "..", "\0")):
        return None
    root = folder.resolve()
    path = (root / name).resolve()
    return path if path.parent == root and path.is_file() else None


def _snapshot_path(folder: Path, raw_name: str) -> Path | None:
    """The file `raw_name` (as sent, percent-encoded) names directly inside `folder`, or None."""
    return _snapshot_file(folder, unquote(raw_name))


def _snapshot_file(folder: Path, name: str) -> Path | None:
    """The snapshot `name` (decoded) directly inside `folder`, or None."""
    return _file_in(folder, name) if SNAPSHOT_NAME.fullmatch(name) else None


def _clip_path(folder: Path, raw_name: str) -> Path | None:
    """The video or thumbnail of a listed clip (its sidecar beside it) `raw_name` names in `folder`, or None."""
    stem, suffix = os.path.splitext(unquote(raw_name))
    if suffix not in CLIP_TYPES or not CLIP_NAME.fullmatch(stem) or _file_in(folder, stem + SIDECAR) is None:
        return None
    return _file_in(folder, stem + suffix)


def _list_snapshots(folder: Path) -> list[dict]:
    """The JPEGs `/snapshots/NAME` would serve, newest first."""
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return []
    files = []
    for path in filter(None, (_snapshot_path(folder, name) for name in names)):
        try:
            info = path.stat()
        except OSError:  # rotated away meanwhile
            continue
        files.append({"name": path.name, "size": info.st_size, "mtime": round(info.st_mtime, 3),
                      "url": f"/snapshots/{quote(path.name)}"})
    return sorted(files, key=lambda f: f["mtime"], reverse=True)


# --- the server -------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def version_string(self) -> str:
        return "smartcam"

    def setup(self) -> None:
        self.request.settimeout(self.server.publisher.send_timeout_s)  # reads and writes: a silent peer is let go
        super().setup()

    def log_message(self, format: str, *args: object) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("http: %s %s", self.address_string(), QUERY_TOKEN.sub(r"\1token=…", format % args))

    def do_GET(self) -> None:
        try:
            self._route()
        except (ConnectionError, TimeoutError) as exc:
            log.debug("http: %s went away (%s)", self.address_string(), exc)

    def _route(self) -> None:
        app = self.server.publisher
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        query_token = query.get("token", [""])[0]
        if url.path != "/healthz" and not app.authorized(self.headers.get("Authorization", ""), query_token,
                                                         self._cookie_token()):
            self._send(app.unauthorized())
        elif url.path == "/":
            self._send(app.page_for(query_token))
        elif url.path == "/stream.mjpg":
            self._stream()
        elif url.path == "/api/clips":
            self._send(app.api_clips(query))
        elif url.path == "/api/similar":
            self._send(json_response(*similar_document(app.ctx.settings, query)))
        elif url.path == "/api/teach":
            self._send(Response(405, b'{"error": "/api/teach takes a POST"}', "application/json",
                                (("Allow", "POST"),)))
        elif url.path.startswith("/clips/"):
            self._clip(url.path[len("/clips/"):])
        elif url.path.startswith("/snapshots/") and url.path != "/snapshots/":
            self._send(app.snapshot_file(url.path[len("/snapshots/"):]))
        else:
            endpoint = {
                "/snapshot.jpg": app.snapshot, "/api/latest": app.api_latest, "/api/mask.png": app.api_mask,
                "/api/stats": app.api_stats,
                "/healthz": app.health, "/metrics": app.metrics, "/snapshots": app.snapshot_list,
                "/snapshots/": app.snapshot_list,
            }.get(url.path, _not_found)
            self._send(endpoint())

    def do_POST(self) -> None:
        """`/api/teach` only: authorized as every route, with a JSON body (a cross-site form cannot send one)."""
        try:
            self._send(self._teach())
        except (ConnectionError, TimeoutError) as exc:
            log.debug("http: %s went away (%s)", self.address_string(), exc)

    def _teach(self) -> Response:
        app = self.server.publisher
        url = urlsplit(self.path)
        self.close_connection = True  # a body not read (refused) must not be taken for the next request
        if not app.authorized(self.headers.get("Authorization", ""), parse_qs(url.query).get("token", [""])[0],
                              self._cookie_token()):
            return app.unauthorized()
        if url.path != "/api/teach":
            return _not_found()
        if self.headers.get_content_type() != "application/json":
            return json_response({"error": "/api/teach takes Content-Type: application/json"}, 415)
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY:
            return json_response({"error": f"/api/teach takes a JSON body of at most {MAX_BODY} bytes, with its "
                                           "Content-Length"}, 413)
        latest = app.latest
        return json_response(*app.teacher.teach(app.ctx.settings, latest.frame if latest else None,
                                                self.rfile.read(int(length)),
                                                lambda name: _snapshot_file(app.snapshots_dir, name)))

    def _cookie_token(self) -> str:
        try:
            morsel = SimpleCookie(self.headers.get("Cookie", "")).get(COOKIE)
        except CookieError:
            return ""
        return unquote(morsel.value) if morsel else ""

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def _clip(self, raw_name: str) -> None:
        """A clip's video or thumbnail."""
        app = self.server.publisher
        refused = app.clips_refused()
        path = None if refused else _clip_path(app.clips_dir, raw_name)
        if path is None:
            self._send(refused or _not_found())
            return
        try:
            with open(path, "rb") as file:
                self._send_file(file, CLIP_TYPES[path.suffix])
        except FileNotFoundError:  # pruned in between
            self._send(_not_found())

    def _send_file(self, file: BinaryIO, content_type: str) -> None:
        """The part of `file` a `Range` header asks for (206), or all of it."""
        size = os.fstat(file.fileno()).st_size
        try:
            wanted = requested_range(self.headers.get("Range"), size)
        except Unsatisfiable:
            self._send(Response(416, b"", "text/plain", (("Content-Range", f"bytes */{size}"),)))
            return
        first, last = wanted or (0, size - 1)
        self.send_response(206 if wanted else 200)
        for name, value in (("Content-Type", content_type), ("Content-Length", str(last - first + 1)),
                            ("Accept-Ranges", "bytes"), ("X-Content-Type-Options", "nosniff"),
                            *((("Content-Range", f"bytes {first}-{last}/{size}"),) if wanted else ())):
            self.send_header(name, value)
        self.end_headers()
        self._copy(file, first, last - first + 1)

    def _copy(self, file: BinaryIO, offset: int, length: int) -> None:
        """`length` bytes of `file` from `offset` to the client, FILE_CHUNK at a time."""
        file.seek(offset)
        while length > 0:
            chunk = file.read(min(FILE_CHUNK, length))
            if not chunk:  # cut short meanwhile: the client cannot trust this connection's framing any more
                self.close_connection = True
                return
            self.wfile.write(chunk)
            length -= len(chunk)

    def _stream(self) -> None:
        """Send every newer frame until the client leaves, is too slow, or the server closes."""
        app = self.server.publisher
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        app.stream_opened()
        dropped = False
        try:
            seq = app.frames.seq
            latest = app.latest  # shown at once: on a still scene that motion gating skips, the next may be far off
            first = latest and latest.sendable_jpeg(app.ctx.stats, app.config.stream.width, app.config.stream.quality)
            if first:
                self._part(first)
            while not app.frames.closed:
                got = app.frames.wait_newer(seq, STREAM_WAKE_S)
                if got is not None:
                    seq, jpeg = got
                    self._part(jpeg)
        except TimeoutError:
            dropped = True
            log.info("http: stream client %s took over %g s to accept a frame; dropped", self.address_string(),
                     app.send_timeout_s)
        finally:
            app.stream_closed(dropped)


    def _part(self, jpeg: bytes) -> None:
        self.wfile.write(b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                         % (BOUNDARY.encode(), len(jpeg), jpeg))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], publisher: HttpPublisher) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.publisher = publisher
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer's own looks up the host's FQDN, which hangs on a board whose DNS is not up yet
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request, client_address) -> None:
        log.exception("http: request from %s failed", client_address[0])


class _NotYet(OSError):
    """A reason not to listen that the world may clear by itself."""


def _listen(config: HttpConfig, publisher: HttpPublisher) -> _Server:
    try:
        return _Server((config.bind, config.port), publisher)
    except socket.gaierror as exc:  # a name: DNS (or mDNS) may not be up yet at boot
        raise _NotYet(f"http.bind {config.bind} does not resolve yet ({exc.strerror}; the network or DNS not up?)") \
            from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise _NotYet(f"http.port {config.port} is in use on {config.bind} (the previous smartcam still "
                          "stopping, or another server: then choose another port, e.g. --set http.port=8081)") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise _NotYet(f"http.bind {config.bind} is not an address of this board yet (the network not up?)") \
                from None
        raise ConfigError(f"http.bind {config.bind}, http.port {config.port}: cannot listen ({exc.strerror or exc}); "
                          "use 127.0.0.1, 0.0.0.0 or an address of this board, and a port above 1023") from None
