"""Robot outputs: UDP and ZeroMQ, built from config.yaml (`udp`, `zmq`)."""

from __future__ import annotations

from app.config import Settings
from app.robot.base import RobotOutput


def build_robot_outputs(settings: Settings) -> list[RobotOutput]:
    """The robot outputs config.yaml turns on."""
    return []
