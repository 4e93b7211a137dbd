"""A webhook receiver for the tests (tests/test_webhooks.py, tests/test_clips_serving.py): an HTTP server on
127.0.0.1 that records every POST, answers with the statuses it is given, and can hold requests (a slow receiver)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


#: the longest a slow receiver holds a request when nobody releases it (a safety net: tests release it)
HELD_S = 60.0


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers with `statuses` in turn, then 200.

    `slow`: each request is held until `release` is set (at most HELD_S seconds).
    """

    def __init__(self, statuses: tuple[int, ...] = (), slow: bool = False) -> None:
        self.requests: list[tuple[str, dict, dict]] = []  # (path, headers, JSON body)
        self.release = threading.Event()
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
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
