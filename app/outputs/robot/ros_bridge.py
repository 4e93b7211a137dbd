"""A ROS 2 node that republishes smartcam's robot output as real vision_msgs messages (Humble or later).

    source /opt/ros/humble/setup.bash          # and: apt install ros-humble-vision-msgs
    python3 -m app.outputs.robot.ros_bridge --zmq tcp://CAMERA-HOST:5601
    python3 -m app.outputs.robot.ros_bridge --udp :5600

For each camera it publishes `/smartcam/CAMERA/detections` (vision_msgs/msg/Detection2DArray),
`/smartcam/CAMERA/classification` (vision_msgs/msg/Classification) or `/smartcam/CAMERA/segments` (the mask, as
sensor_msgs/msg/CompressedImage: a PNG of class ids; the class areas have no ROS message and are left out), and
`/smartcam/CAMERA/label_info` (vision_msgs/msg/LabelInfo, transient local, so a late subscriber gets the last one).
`poses` has no ROS 2 message to become, so it is not republished. Stamps are the frame's (`header.stamp`: wall
clock, ROS 2's default clock), frame ids the camera's `frame_id`.

It runs beside ROS, not inside smartcam: rclpy and vision_msgs come from the ROS installation and are imported in
`main()` only. The conversions take the message classes as a parameter, so they are tested here with stand-ins built
from vision_msgs 4.1.1's field lists; this node has NOT been run against a real ROS 2.
"""

from __future__ import annotations

import argparse
import base64
import re
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from app.outputs.robot.client import receive_udp, receive_zmq


def header(message: dict, msgs: Any) -> Any:
    stamp = message["header"]["stamp"]
    return msgs.Header(stamp=msgs.Time(sec=int(stamp["sec"]), nanosec=int(stamp["nanosec"])),
                       frame_id=str(message["header"]["frame_id"]))


def hypothesis(result: dict, msgs: Any) -> Any:
    return msgs.ObjectHypothesis(class_id=str(result["class_id"]), score=float(result["score"]))


def pose(document: dict, msgs: Any) -> Any:
    position, orientation = document["pose"]["position"], document["pose"]["orientation"]
    return msgs.PoseWithCovariance(
        pose=msgs.Pose(position=msgs.Point(**{k: float(position[k]) for k in "xyz"}),
                       orientation=msgs.Quaternion(**{k: float(orientation[k]) for k in "xyzw"})),
        covariance=[float(v) for v in document["covariance"]])


def to_detection2d_array(message: dict, msgs: Any) -> Any:
    """A `detections` message as vision_msgs/msg/Detection2DArray."""
    detections = []
    for d in message["detections"]:
        bbox, center = d["bbox"], d["bbox"]["center"]
        detections.append(msgs.Detection2D(
            header=header(d, msgs),
            results=[msgs.ObjectHypothesisWithPose(hypothesis=hypothesis(r["hypothesis"], msgs),
                                                   pose=pose(r["pose"], msgs)) for r in d["results"]],
            bbox=msgs.BoundingBox2D(
                center=msgs.Pose2D(position=msgs.Point2D(x=float(center["position"]["x"]),
                                                         y=float(center["position"]["y"])),
                                   theta=float(center["theta"])),
                size_x=float(bbox["size_x"]), size_y=float(bbox["size_y"])),
            id=str(d["id"])))
    return msgs.Detection2DArray(header=header(message, msgs), detections=detections)


def to_classification(message: dict, msgs: Any) -> Any:
    """A `classification` message as vision_msgs/msg/Classification."""
    return msgs.Classification(header=header(message, msgs), results=[hypothesis(r, msgs) for r in message["results"]])


def to_label_info(message: dict, msgs: Any) -> Any:
    """A `label_info` message as vision_msgs/msg/LabelInfo."""
    return msgs.LabelInfo(header=header(message, msgs), threshold=float(message["threshold"]),
                          class_map=[msgs.VisionClass(class_id=int(c["class_id"]), class_name=str(c["class_name"]))
                                     for c in message["class_map"]])


def to_compressed_image(message: dict, msgs: Any) -> Any:
    """A `segments` message's mask as sensor_msgs/msg/CompressedImage (the PNG's bytes, decoded from base64)."""
    mask = message["mask"]
    return msgs.CompressedImage(header=header(mask, msgs), format=str(mask["format"]),
                                data=base64.b64decode(mask["data"]))


CONVERT = {"detections": ("Detection2DArray", to_detection2d_array),
           "classification": ("Classification", to_classification),
           "segments": ("CompressedImage", to_compressed_image),
           "label_info": ("LabelInfo", to_label_info)}


def topic(camera: str, kind: str) -> str:
    """/smartcam/CAMERA/KIND, the camera's name made a valid ROS name (letters, digits, underscores)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", camera)
    return f"/smartcam/{'_' + name if name[:1].isdigit() else name}/{kind}"


def ros_messages() -> SimpleNamespace:
    """The real message classes (ROS 2 must be sourced)."""
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import Point, Pose, PoseWithCovariance, Quaternion
    from sensor_msgs.msg import CompressedImage  # type: ignore[import-not-found]  # ROS 2's, not installed here
    from std_msgs.msg import Header
    from vision_msgs.msg import (BoundingBox2D, Classification, Detection2D, Detection2DArray, LabelInfo,
                                 ObjectHypothesis, ObjectHypothesisWithPose, Point2D, Pose2D, VisionClass)

    return SimpleNamespace(Time=Time, Header=Header, Point=Point, Pose=Pose, PoseWithCovariance=PoseWithCovariance,
                           Quaternion=Quaternion, BoundingBox2D=BoundingBox2D, Classification=Classification,
                           Detection2D=Detection2D, Detection2DArray=Detection2DArray, LabelInfo=LabelInfo,
                           ObjectHypothesis=ObjectHypothesis, ObjectHypothesisWithPose=ObjectHypothesisWithPose,
                           Point2D=Point2D, Pose2D=Pose2D, VisionClass=VisionClass, CompressedImage=CompressedImage)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m app.outputs.robot.ros_bridge", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--zmq", metavar="ENDPOINT", help="smartcam's zmq.bind as seen from here: tcp://HOST:5601")
    source.add_argument("--udp", metavar="[HOST]:PORT", help="where smartcam's udp.target sends: :5600")
    args = parser.parse_args(argv)
    try:
        import rclpy
        from rclpy.qos import DurabilityPolicy, QoSProfile
        msgs = ros_messages()
    except ImportError as exc:
        print(f"ros_bridge needs ROS 2 with vision_msgs ({exc}): source /opt/ros/humble/setup.bash, "
              "apt install ros-humble-vision-msgs", file=sys.stderr)
        return 1
    messages: Iterator[dict] = receive_zmq(args.zmq) if args.zmq else receive_udp(args.udp)
    rclpy.init()
    node = rclpy.create_node("smartcam_bridge")
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    publishers: dict[str, Any] = {}
    try:
        for message in messages:
            if message["type"] not in CONVERT:  # poses: no ROS 2 message
                continue
            type_name, convert = CONVERT[message["type"]]
            name = topic(message["camera"], message["type"])
            if name not in publishers:
                qos = latched if message["type"] == "label_info" else 10
                publishers[name] = node.create_publisher(getattr(msgs, type_name), name, qos)
            publishers[name].publish(convert(message, msgs))
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
