"""Headless Chromium as the tests drive it: a fresh profile each time, a page's DOM or screenshot by the command
line, and a page's JavaScript value over DevTools' pipe while it runs in real time (the live page's polls, a clip's
`<video>`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def chromium_command(tmp_path: Path) -> list[str]:
    """Headless Chromium with a fresh profile, as the tests start it."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is not installed: ./install.sh --dev installs it (or apt-get install chromium)")
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / f'chromium-{time.monotonic_ns()}'}"]


def chromium(url: str, tmp_path: Path, *flags: str, wait: str = "--virtual-time-budget=5000") -> str:
    """Headless Chromium on `url`; its standard output. `wait`: how long the page runs (virtual time waits for the
    stream's data; a page whose stream sends nothing for long needs `page_value`)."""
    done = subprocess.run([*chromium_command(tmp_path), wait, *flags, url], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def page_value(url: str, tmp_path: Path, expression: str, done: Callable[[object], bool], timeout: float = 30.0):
    """Open `url` in headless Chromium and evaluate the JavaScript `expression` in it every 0.2 s, in real time,
    until `done(value)`; the last value. Spoken over DevTools' pipe (Chromium reads commands on its fd 3 and answers
    on fd 4, each message JSON and a NUL): `--dump-dom` dumps at the load event, before the page's first poll has
    come back (a race it mostly lost), and its virtual time never runs while a stream stays open. bash moves the pipes
    to fds 3 and 4 (dash takes only one-digit fds)."""
    commands, replies = os.pipe(), os.pipe()
    browser = subprocess.Popen(
        ["bash", "-c", f'exec "$@" 3<&{commands[0]} 4>&{replies[1]}', "bash", *chromium_command(tmp_path),
         "--remote-debugging-pipe", "about:blank"],
        pass_fds=(commands[0], replies[1]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(commands[0])
    os.close(replies[1])
    pending = b""
    numbers = iter(range(1, 1_000_000))

    def call(method: str, session: str | None = None, **params: object) -> dict:
        nonlocal pending
        number = next(numbers)
        message = {"id": number, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(commands[1], json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in pending:
                chunk = os.read(replies[0], 65536)
                assert chunk, f"Chromium closed its DevTools pipe during {method}"
                pending += chunk
            raw, _, pending = pending.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == number:
                assert "error" not in reply, reply
                return reply["result"]

    try:
        target = call("Target.createTarget", url=url)["targetId"]
        session = call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        deadline = time.monotonic() + timeout
        while True:
            value = call("Runtime.evaluate", session, expression=expression, returnByValue=True)["result"].get("value")
            if done(value) or time.monotonic() > deadline:
                return value
            time.sleep(0.2)
    finally:
        browser.kill()
        browser.wait()
        os.close(commands[1])
        os.close(replies[0])
