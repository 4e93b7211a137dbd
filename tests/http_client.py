"""The tests' HTTP client for the page, its API and its MJPEG stream: exact requests and whole JPEG frames, shared by
the tests of the HTTP output and of what it serves (privacy)."""

from __future__ import annotations

import http.client
import json


def request(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET `path` exactly as written (no normalisation, no quoting): (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        answered: dict[str, str] = {}
        for name, value in response.getheaders():  # repeated headers joined, as HTTP allows
            answered[name.lower()] = f"{answered[name.lower()]}, {value}" if name.lower() in answered else value
        return response.status, answered, response.read()
    finally:
        conn.close()


def get_json(port: int, path: str, headers: dict[str, str] | None = None) -> dict:
    status, _, body = request(port, path, headers)
    assert status == 200, (path, status, body)
    return json.loads(body)


def read_frames(port: int, count: int, headers: dict[str, str] | None = None) -> list[bytes]:
    """`count` complete JPEGs from /stream.mjpg, parsed part by part."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/stream.mjpg", headers=headers or {})
    response = conn.getresponse()
    try:
        assert response.status == 200
        assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
        frames: list[bytes] = []
        while len(frames) < count:
            line = response.readline()
            assert line, "the stream ended"
            if not line.strip():
                continue
            assert line.strip() == b"--frame", line[:80]
            part = {}
            while (line := response.readline().strip()):
                name, _, value = line.partition(b":")
                part[name.strip().lower()] = value.strip()
            assert part[b"content-type"] == b"image/jpeg"
            jpeg = response.read(int(part[b"content-length"]))
            assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
            frames.append(jpeg)
        return frames
    finally:
        conn.close()
