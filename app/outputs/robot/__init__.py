"""Robot outputs: UDP and ZeroMQ, built from config.yaml (`udp`, `zmq`).

Both send the same messages (`app.outputs.robot.message`, schema in `detections.schema.json`), from the end of the
inference lane; `app.outputs.robot.client` is a robot's end of either, `app.outputs.robot.ros_bridge` republishes them
in ROS 2.
"""

from __future__ import annotations

from app.config import Settings
from app.outputs.robot.base import RobotOutput
from app.outputs.robot.udp import UdpOutput
from app.outputs.robot.zmq import ZmqOutput


def build_robot_outputs(settings: Settings) -> list[RobotOutput]:
    """The robot outputs config.yaml turns on."""
    device = settings.device
    outputs: list[RobotOutput] = []
    if device.udp.enabled:
        outputs.append(UdpOutput(device.udp))
    if device.zmq.enabled:
        outputs.append(ZmqOutput(device.zmq))
    return outputs
