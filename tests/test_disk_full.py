"""A disk that fills while JSON lines are written, for real: two cameras of one process write one JSON-lines file
on a 512 KiB tmpfs mounted in a mount namespace of the run's own (`unshare --mount`: root, as on a fresh Debian,
or user namespaces). The test fills that disk beside the file, then frees it: both cameras, their HTTP pages and
MQTT run on, each camera's JSON lines pause with one warning and count their drops, the file holds whole lines only,
and writing resumes when space returns."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT, free_port, pet_pipeline, subscribed, wait_for

CAMERAS = ("left", "right")
#: mounts the small disk on $0, runs the app (the rest of the arguments), writes its pid and then its exit status
#: beside the disk, and keeps the namespace, and so the disk, until its standard input closes (the test reads the
#: file after the app has ended); then unmounts it, which matters only where it was mounted outside a namespace
WRAPPER = r"""
mount -t tmpfs -o size=512k smalldisk "$0" || exit 97
"$@" &
echo $! > "$0.pid"
wait $!
echo $? > "$0.status"
read -r _
umount "$0"
"""


def mount_namespace_command() -> list[str]:
    """`unshare --mount` (with a user namespace when not root). As root where unshare cannot make a namespace (in a
    chroot, whose root is no mount point it could make private): nothing, and the disk is mounted where the test
    runs, then unmounted by the wrapper (or by the test, if the wrapper did not end well). A failure saying why,
    when neither can be."""
    command = ["unshare", "--mount", *(["--map-root-user"] if os.geteuid() else [])]
    try:
        probe = subprocess.run([*command, "true"], capture_output=True, text=True)
        problem = (probe.stderr.strip() or f"exit status {probe.returncode}") if probe.returncode else ""
    except OSError as exc:
        problem = str(exc)
    if problem and os.geteuid() == 0:
        return []  # a chroot (fresh-debian's): the disk is mounted here, and unmounted at the end
    if problem:
        pytest.fail(f"this test needs a mount namespace of its own (run it as root): {' '.join(command)} failed: "
                    f"{problem}", pytrace=False)
    return command


def two_free_ports() -> int:
    """A port P such that P and P + 1 are free: the two cameras' pages listen on them."""
    while True:
        port = free_port()
        try:
            with socket.create_server(("127.0.0.1", port + 1)):
                return port
        except OSError:
            continue


def api(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return json.load(response)


def camera_of(line: str) -> str:
    """The camera a log line of the JSON-lines output names (`... app.outputs.jsonl: CAMERA: ...`)."""
    return line.split(" app.outputs.jsonl: ")[1].split(":")[0]


def fill(disk: Path) -> None:
    """Write a file beside the JSON lines until the disk has no room left."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)


def test_a_disk_that_fills_pauses_json_lines_alone_until_space_returns(tmp_path: Path, broker) -> None:
    unshare = mount_namespace_command()
    disk = tmp_path / "disk"
    disk.mkdir()
    results = disk / "results.jsonl"
    port = two_free_ports()
    ports = {name: port + i for i, name in enumerate(CAMERAS)}
    pets = pet_pipeline(tmp_path)
    config = tmp_path / "cameras.yaml"
    config.write_text(yaml.safe_dump({
        "cameras": [{"name": name, "source": "pattern", "width": 320, "height": 240, "fps": 30, "pipeline": str(pets),
                     "http": {"port": ports[name]}} for name in CAMERAS],
        "jsonl": {"enabled": True, "path": str(results), "min_free_mb": 0},
        "http": {"enabled": True, "port": port},
        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "publish_results": True}}))
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        wrapper = subprocess.Popen([*unshare, "sh", "-c", WRAPPER, str(disk), sys.executable, "-m", "app",
                                    "--config", str(config)],
                                   cwd=PROJECT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr)
    inside = Path(f"/proc/{wrapper.pid}/root{disk}")  # the small disk, as the app sees it

    def drops(name: str) -> int:
        return api(ports[name], "/api/stats")["drops"].get("jsonl_disk_full", 0)

    def latest(name: str) -> int:
        return api(ports[name], "/api/latest").get("seq") or 0

    def written() -> int:
        return (inside / results.name).stat().st_size

    def state() -> str:
        return f"the app's log:\n{log.read_text()}"

    def lines_written() -> bool:
        assert wrapper.poll() is None, f"the run ended (status {wrapper.returncode}); {state()}"
        return (inside / results.name).exists() and written() > 20_000

    app_pid, ended = tmp_path / "disk.pid", tmp_path / "disk.status"
    try:
        wait_for(lines_written, state, timeout=120)
        fill(inside)
        wait_for(lambda: all(drops(name) >= 30 for name in CAMERAS), lambda: f"lines dropped on the full disk; "
                                                                               f"{state()}", timeout=60)
        seen = {name: latest(name) for name in CAMERAS}  # the cameras, their pages and MQTT go on
        with subscribed(broker.port, "smartcam/+/+/results") as mqtt:
            wait_for(lambda: all(latest(name) > seen[name] + 30 for name in CAMERAS),
                     lambda: f"results while the disk is full; {state()}", timeout=60)
            wait_for(lambda: all(len(mqtt.payloads(f"smartcam/{name}/pets/results")) > 30 for name in CAMERAS),
                     lambda: f"MQTT results while the disk is full; {state()}", timeout=60)
        dropped = {name: drops(name) for name in CAMERAS}
        when_full = written()
        (inside / "filler").unlink()
        wait_for(lambda: written() > when_full + 20_000, lambda: f"lines after space returned; {state()}",
                 timeout=60)
        os.kill(int(app_pid.read_text()), signal.SIGTERM)
        status = wait_for(lambda: ended.read_text() if ended.exists() else None, lambda: f"the app to end; {state()}",
                          timeout=60)
        text = (inside / results.name).read_text()
    finally:
        if app_pid.exists() and not ended.exists():  # the test failed while the app ran
            os.kill(int(app_pid.read_text()), signal.SIGKILL)
        wrapper.communicate(timeout=30)  # its standard input closes: the namespace and the small disk go
        if not unshare and os.path.ismount(disk):  # mounted where the test runs, and the wrapper did not end well
            subprocess.run(["umount", "-l", str(disk)], check=False)
    stderr_text = log.read_text()

    assert status.strip() == "0", stderr_text
    assert text.endswith("\n")
    seqs = defaultdict(list)
    for line in text.splitlines():
        result = json.loads(line)  # every line whole
        seqs[result["source"]].append(result["seq"])
    for name in CAMERAS:
        assert seqs[name] == sorted(set(seqs[name]))
        assert dropped[name] >= 30
    assert "Traceback" not in stderr_text, stderr_text
    paused = [line for line in stderr_text.splitlines() if "jsonl paused" in line]
    resumed = [line for line in stderr_text.splitlines() if "jsonl resumed after" in line]
    # each camera pauses once as the disk fills and resumes once space returns; at the very edge of full, the bytes
    # of a line cut short (truncated away, so the file keeps whole lines) may take a shorter line: resumed, and at
    # once paused again. Every pause ends in a resume.
    assert sorted({camera_of(line) for line in paused}) == list(CAMERAS), stderr_text
    for name in CAMERAS:
        assert [camera_of(line) for line in paused].count(name) == [camera_of(line) for line in resumed].count(name)
    assert all(str(results) in line and "No space left on device" in line for line in paused)
