"""A robot's end of the robot output, short enough to copy: receive smartcam's messages over UDP or ZeroMQ.

    python -m app.outputs.robot.client udp 127.0.0.1:5600    # what udp.target names (a multicast group is joined,
    python -m app.outputs.robot.client udp 239.0.0.1:5600 192.168.1.20  # on the interface with this address)
    python -m app.outputs.robot.client zmq tcp://127.0.0.1:5601 [cam0/]

One line per frame: camera, seq, stamp (wall clock), the detections (label#track_id), classes, class areas or the
poses' scores, and how long after the stamp the message arrived (CLOCK_MONOTONIC, so only meaningful on the camera's
own host). Needs only Python (and pyzmq for ZeroMQ); `receive_udp` and `receive_zmq` are what `ros_bridge` builds on.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import time
from collections.abc import Generator


def receive_udp(target: str, interface: str = "0.0.0.0") -> Generator[dict, None, None]:
    """Each message sent to HOST:PORT (`:PORT` listens on every address); a multicast group is joined on the
    interface whose address is `interface` (by default the one the system routes the group to)."""
    host, _, port = target.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    family, kind, _, _, address = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, kind) as sock:
        group = str(address[0])
        if ipaddress.ip_address(group).is_multicast:  # an IPv4 group, joined on the default interface
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                            socket.inet_aton(group) + socket.inet_aton(interface))
        sock.bind(address)
        while True:
            yield json.loads(sock.recv(65535))


def receive_zmq(endpoint: str, topic: str = "") -> Generator[dict, None, None]:
    """Each message published on `endpoint` whose topic starts with `topic` (`cam0/`: one camera's)."""
    import zmq

    with zmq.Context().socket(zmq.SUB) as sub:
        sub.connect(endpoint)
        sub.subscribe(topic)
        while True:
            _topic, payload = sub.recv_multipart()
            yield json.loads(payload)


def line(message: dict) -> str:
    """One message as a line for people."""
    if message["type"] == "label_info":
        return f"{message['camera']}: label_info, {len(message['class_map'])} classes, threshold {message['threshold']}"
    stamp = message["header"]["stamp"]
    found = ([d["results"][0]["hypothesis"]["label"] + (f"#{d['id']}" if d["id"] else "")
              for d in message.get("detections", [])] + [r["label"] for r in message.get("results", [])]
             + [f"{s['label']} {s['area']:.2f}" for s in message.get("segments", [])]
             + [f"pose {p['score']:.2f}" for p in message.get("poses", [])])
    age_ms = (time.clock_gettime_ns(time.CLOCK_MONOTONIC) - message["stamp_monotonic_ns"]) / 1e6
    return (f"{message['camera']} seq {message['seq']} stamp {stamp['sec']}.{stamp['nanosec']:09d} "
            f"{', '.join(found) or '-'} {age_ms:.1f} ms after {message['stamp_source']}")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("udp", "zmq"):
        print(__doc__, file=sys.stderr)
        return 2
    messages = receive_udp(argv[1], *argv[2:3]) if argv[0] == "udp" else receive_zmq(argv[1], *argv[2:3])
    try:
        for message in messages:
            print(line(message), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
