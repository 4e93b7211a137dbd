"""The robot output over UDP: one datagram per processed frame, sent from the inference lane without waiting.

No broker, no connection, no outbox: `send` hands the datagram to the kernel on a non-blocking socket and returns.
What the kernel will not take (a full buffer: EAGAIN), what a peer refuses (ECONNREFUSED, from the ICMP a closed
port sends back, on the next send), a network not up yet (ENETUNREACH) and a message larger than a datagram can be
are each a `udp_error` or `udp_too_large` drop, logged once per cause. The class map (LabelInfo) goes at start and
again every `label_info_s`, from `send` itself, so a robot that starts late learns it without a thread here.

The target is an address (IPv4, `[IPv6]`, or a multicast group, sent with `multicast_ttl` hops and looped back to
this board) or a name. A name is resolved in a background thread, tried again every RESOLVE_RETRY_S while it does
not resolve (at boot, DNS may not be up yet: the world fixes that, so it never stops the camera); frames meanwhile
are `udp_unresolved` drops. It is resolved once, to its IPv4 address when it has one: a robot whose address
changes needs a restart (or an address).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading

from app.config import UdpConfig
from app.frame import Frame
from app.outputs.robot.base import RobotContext, RobotOutput
from app.outputs.robot.message import Messages

#: the largest UDP payload IPv4 can carry (65535 - 20 bytes of IP header - 8 of UDP header)
MAX_DATAGRAM = 65507
#: how often a target name that does not resolve is tried again
RESOLVE_RETRY_S = 2.0


def split_target(target: str) -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT as (host, port)."""
    host, _, port = target.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


class UdpOutput(RobotOutput):
    def __init__(self, config: UdpConfig) -> None:
        self.config = config
        self.host, self.port = split_target(config.target)
        self._messages: Messages | None = None
        #: set once the target is resolved (from the resolver thread for a name)
        self._socket: socket.socket | None = None
        self._address: tuple = ()
        #: the socket connect() was called on: a socket put in its place (a target resolved anew) is connected too
        self._connected_socket: socket.socket | None = None
        self._unresolved = ""
        self._closed = threading.Event()

    def start(self, ctx: RobotContext) -> None:
        self._messages = Messages(ctx, self.config.label_info_s)
        ctx.stats.health["udp"] = self.health
        try:
            self._open(socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST))
        except socket.gaierror:  # a name: looked up without holding anything up
            self._unresolved = f"udp.target {self.host} is being resolved"
            threading.Thread(target=self._resolve, name="udp-resolve", daemon=True).start()
            return
        self._send_label_info_if_due()

    def _resolve(self) -> None:
        while not self._closed.is_set():
            try:
                found = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
            except (socket.gaierror, UnicodeError) as exc:
                self._unresolved = f"udp.target {self.host} does not resolve ({exc}); tried every {RESOLVE_RETRY_S:g} s"
                self._closed.wait(RESOLVE_RETRY_S)
                continue
            if not self._closed.is_set():
                self._open(found)
            return

    def _open(self, found: list) -> None:
        """Send to the first address found, IPv4 first: a name like `localhost` that resolves to ::1 and 127.0.0.1
        reaches the robot listening on 127.0.0.1, as most do (a robot on IPv6 alone is named by its address)."""
        family, kind, proto, _, address = next((f for f in found if f[0] == socket.AF_INET), found[0])
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        if ipaddress.ip_address(address[0]).is_multicast:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, self.config.multicast_ttl)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, self.config.multicast_ttl)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        self._address = address
        self._socket = sock
        self._unresolved = ""

    def health(self) -> dict[str, object]:
        if self._socket is None:
            return {"ok": False, "state": "resolving", "target": self.config.target, "last_error": self._unresolved}
        return {"ok": True, "state": "sending", "target": self.config.target}

    def send(self, frame: Frame) -> None:
        assert self._messages is not None, "start() first"
        if self._socket is None:
            self._messages.drop("udp_unresolved", "", f"udp: frames before {self.host} resolves are not sent")
            return
        self._send_label_info_if_due()
        self._send(self._socket, self._messages.frame(frame)[1])

    def _send_label_info_if_due(self) -> None:
        assert self._messages is not None and self._socket is not None
        label_info = self._messages.label_info_due()
        if label_info is not None:
            self._send(self._socket, label_info)

    def _send(self, sock: socket.socket, payload: bytes) -> None:
        assert self._messages is not None
        if len(payload) > MAX_DATAGRAM:
            self._messages.drop("udp_too_large", "", f"udp: a message of {len(payload)} bytes is larger than a "
                                f"datagram can be ({MAX_DATAGRAM}): fewer results (postprocess.max_results) fit; a "
                                "segmentation's mask this large goes over zmq")
            return
        try:
            # connected, so a closed port's ICMP comes back as ECONNREFUSED; connected here, not at start, so a
            # network that is not up yet (ENETUNREACH) is a drop now and works once it is
            if self._connected_socket is not sock:
                sock.connect(self._address)
                self._connected_socket = sock
            sock.send(payload)
        except OSError as exc:
            cause = errno.errorcode.get(exc.errno or 0, str(exc))
            self._messages.drop("udp_error", cause, f"udp: sending to {self.config.target} failed: {cause} "
                                f"({exc.strerror or exc})")

    def close(self) -> None:
        self._closed.set()
        if self._socket is not None:
            self._socket.close()
