"""The robot outputs' sections of config.yaml: `udp:` and `zmq:`, whose targets and endpoints are checked as
the sockets will read them."""

from __future__ import annotations

from pydantic import Field, field_validator

from app.config.base import Strict, port_number

class UdpConfig(Strict):
    """The robot output over UDP: one datagram per processed frame, from the end of the inference lane."""

    enabled: bool = False
    target: str = Field("127.0.0.1:5600", pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]{1,253}):\d{1,5}$",
                        description="HOST:PORT to send to; a multicast group (224.0.0.0/4) is sent multicast")
    multicast_ttl: int = Field(1, ge=0, le=255, description="hops a multicast datagram may take (1: this network)")

    @field_validator("target")
    @classmethod
    def _port_in_range(cls, target: str) -> str:
        port_number(target.rpartition(":")[2], "HOST:PORT")
        return target
    label_info_s: float = Field(5.0, gt=0, le=86400, description="how often the class map is sent again")


#: the longest path a unix socket address holds (sockaddr_un.sun_path less its NUL)
MAX_IPC_PATH = 107


class ZmqConfig(Strict):
    """The robot output over ZeroMQ: a PUB socket, one message per processed frame, from the end of the inference
    lane."""

    enabled: bool = False
    bind: str = Field("tcp://127.0.0.1:5601", pattern=r"^(tcp|ipc|inproc)://\S+$",
                      description="the PUB socket's endpoint: tcp://HOST:PORT (tcp://*:5601 for every interface), "
                                  "ipc://PATH")

    @field_validator("bind")
    @classmethod
    def _tcp_has_a_port(cls, bind: str) -> str:
        scheme, _, rest = bind.partition("://")
        if scheme == "ipc" and len(rest.encode()) > MAX_IPC_PATH:
            raise ValueError(f"an ipc:// path is at most {MAX_IPC_PATH} bytes (a unix socket's limit); use a shorter "
                             "one, e.g. ipc:///run/smartcam/robot.sock")
        if scheme == "tcp":
            host, colon, port = rest.rpartition(":")
            if not colon or not host:
                raise ValueError("expected tcp://ADDRESS:PORT, e.g. tcp://*:5601 or tcp://127.0.0.1:5601")
            port_number(port, "tcp://ADDRESS:PORT")
        return bind
    label_info_s: float = Field(5.0, gt=0, le=86400, description="how often the class map is sent again")
