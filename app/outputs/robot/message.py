"""What the robot outputs send: a processed frame as JSON shaped like ROS 2's vision_msgs, and the class map.

Field names are vision_msgs 4.1.1's (ros-perception/vision_msgs, branch ros2, tag 4.1.1, commit e77fa2d; the
`.msg` files in vision_msgs/msg/), with std_msgs/Header, builtin_interfaces/Time and geometry_msgs from ROS 2
common_interfaces 4.2 (Humble). So a ROS node (`app.outputs.robot.ros_bridge`) copies fields one to one, and a
robot without ROS reads the same names its ROS code would.

- `detections`: vision_msgs/Detection2DArray. Each Detection2D has one ObjectHypothesisWithPose; its
  `hypothesis.class_id` is the model's numeric class id as a string ("17"), the key LabelInfo's `class_map` uses
  (VisionClass.class_id is a uint16), so a ROS consumer joins the two with `int()`; the name rides beside it as an
  extra `label` field. `pose` is ROS 2's defaults (zeros, identity orientation): a 2D detector knows no 3D pose.
  `bbox` is the box's centre and size in source-frame pixels; `id` is the track id as a string with the `track`
  stage, else "".
- `classification`: vision_msgs/Classification (header, `results`: ObjectHypothesis[], each with `label` too).
- `label_info`: vision_msgs/LabelInfo (header, `class_map`, `threshold`).
- `segments` (a segmentation model's frame): each class's share of the frame (`segments`, as in the result JSON),
  and `mask`, shaped after sensor_msgs/CompressedImage (common_interfaces 4.2: header, `format`, `data`): `format`
  "png", `data` the PNG's bytes in base64 (JSON has no bytes). The PNG is 8-bit grey at the source frame's size, one
  value per pixel: the class id (LabelInfo's `class_map` names it), 255 where the model did not see the frame
  (`app.outputs.mask_png`). It goes with every frame, as the type says (`segments`, named as the result is): a
  class map compresses to a few kB (grace_hopper.bmp's: 3.1 kB at its 512x600, 4.9 kB scaled to 1280x720, 20 kB
  to 3840x2160), within a datagram once in base64.
- `poses` (a pose model's frame): ROS 2's common_interfaces and vision_msgs 4.1.1 have no message for 2D keypoints,
  so `poses` (named as the result is) is the result JSON's: per person its `score` and 17 `keypoints` {name, x, y,
  score} (COCO's names, x and y in source-frame pixels), under the same header and fields as the others. A ROS
  node maps it to its own message (ROS4HRI's hri_msgs/Skeleton2D, say, whose points are normalised to the image).
- A detection's `attributes` (what later stages learnt of it: the crop stage's `keypoints`, in the same shape as a
  pose's) ride beside its Detection2D fields, each under its own key, as in the result JSON; the schema checks
  `keypoints` and lets the others through.

`header.stamp` is the frame's stamp on the wall clock (ROS 2's default clock is the system clock); the same instant
on CLOCK_MONOTONIC (picamera2's and V4L2's clock) is `stamp_monotonic_ns`, and `stamp_source` says what the stamp is
(exposure, presentation or arrival). Beside the ROS fields: `type`, `camera`, `pipeline`, `seq`, `size` [w, h] and
`latency_ms`. `detections.schema.json` is the schema of them all. `Messages` is what each output shares: the
encoding, when the class map is due, and counting (and logging once) what could not be sent.
"""

from __future__ import annotations

import base64
import json
import logging
import time

from app.frame import Frame
from app.model.kinds.pose import POSES, Poses
from app.model.kinds.segmentation import SEGMENTS, Segments
from app.outputs.mask_png import mask_png, segments_of
from app.outputs.robot.base import RobotContext

log = logging.getLogger(__name__)

DETECTIONS, CLASSIFICATION, LABEL_INFO = "detections", "classification", "label_info"
#: sensor_msgs/CompressedImage's `format` of the mask
MASK_FORMAT = "png"
#: geometry_msgs/PoseWithCovariance as ROS 2 makes it by default: a 2D detection has no 3D pose
NO_POSE = {"pose": {"position": {"x": 0.0, "y": 0.0, "z": 0.0},
                    "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}},
           "covariance": [0.0] * 36}


def header(ts: float, frame_id: str) -> dict:
    """std_msgs/Header: a wall-clock time (seconds) as builtin_interfaces/Time, and the frame id."""
    sec, nanosec = divmod(round(ts * 1e9), 1_000_000_000)
    return {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": frame_id}


def _common(kind: str, frame: Frame, ctx: RobotContext) -> dict:
    return {"type": kind, "header": header(frame.ts, ctx.frame_id), "camera": ctx.camera, "pipeline": ctx.pipeline,
            "seq": frame.seq, "stamp_monotonic_ns": frame.stamp_ns, "stamp_source": frame.stamp,
            "size": list(frame.size)}


def detections_message(frame: Frame, ctx: RobotContext) -> dict:
    """vision_msgs/Detection2DArray for one processed frame, plus smartcam's fields."""
    out = _common(DETECTIONS, frame, ctx)
    out["detections"] = [{
        "header": out["header"],
        "results": [{"hypothesis": {"class_id": str(d.class_id), "score": round(d.score, 4), "label": d.label},
                     "pose": NO_POSE}],
        "bbox": {"center": {"position": {"x": round((d.box[0] + d.box[2]) / 2, 2),
                                         "y": round((d.box[1] + d.box[3]) / 2, 2)}, "theta": 0.0},
                 "size_x": round(d.box[2] - d.box[0], 2), "size_y": round(d.box[3] - d.box[1], 2)},
        "id": "" if d.track_id is None else str(d.track_id),
        **d.attributes,
    } for d in frame.detections]
    out["latency_ms"] = latency(frame)
    return out


def classification_message(frame: Frame, ctx: RobotContext) -> dict:
    """vision_msgs/Classification for one classified frame (its top-k, best first), plus smartcam's fields."""
    out = _common(CLASSIFICATION, frame, ctx)
    out["results"] = [{"class_id": str(c.class_id), "score": round(c.score, 4), "label": c.label}
                      for c in frame.classes]
    out["latency_ms"] = latency(frame)
    return out


def segments_message(frame: Frame, segments: Segments, ctx: RobotContext) -> dict:
    """Each class's share of the frame and the mask as sensor_msgs/CompressedImage (a PNG), plus smartcam's fields."""
    out = _common(SEGMENTS, frame, ctx)
    out["segments"] = segments.as_json()
    out["mask"] = {"header": out["header"], "format": MASK_FORMAT,
                   "data": base64.b64encode(mask_png(segments)).decode("ascii")}
    out["latency_ms"] = latency(frame)
    return out


def poses_message(frame: Frame, poses: Poses, ctx: RobotContext) -> dict:
    """The frame's poses, best first, each person's keypoints in source pixels, plus smartcam's fields."""
    out = _common(POSES, frame, ctx)
    out["poses"] = poses.as_json()
    out["latency_ms"] = latency(frame)
    return out


def latency(frame: Frame) -> dict[str, float]:
    """The frame's stage times and its exposure-to-result time, in ms."""
    return {name: round(ms, 3) for name, ms in frame.timing.items()}


def label_info_message(ctx: RobotContext, ts: float) -> dict:
    """vision_msgs/LabelInfo: the model's class map and the score threshold, stamped `ts` (wall clock)."""
    return {"type": LABEL_INFO, "header": header(ts, ctx.frame_id), "camera": ctx.camera, "pipeline": ctx.pipeline,
            "class_map": [{"class_id": i, "class_name": name} for i, name in sorted(ctx.labels.items())],
            "threshold": ctx.threshold}


def encode(message: dict) -> bytes:
    """Compact JSON, UTF-8."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


class Messages:
    """One output's messages: each frame's, the class map at the first frame and every `every_s`, and the count of
    what could not be sent (each reason and cause logged once: a dead peer must not flood the log)."""

    def __init__(self, ctx: RobotContext, every_s: float) -> None:
        self.ctx = ctx
        self.every_s = every_s
        self._next_label_info: float | None = None
        self._logged: set[tuple[str, str]] = set()

    def label_info_due(self) -> bytes | None:
        """The encoded class map when it is due (the first call, then every `every_s`), else None."""
        now = time.monotonic()
        if self._next_label_info is not None and now < self._next_label_info:
            return None
        self._next_label_info = now + self.every_s
        return encode(label_info_message(self.ctx, time.time()))

    def frame(self, frame: Frame) -> tuple[str, bytes]:
        """The type and encoded message of one processed frame: segments or poses when its model gives them, a
        classification when the results are classes, else detections."""
        segments, poses = segments_of(frame), frame.kind_results.get(POSES)
        if segments is not None:
            return SEGMENTS, encode(segments_message(frame, segments, self.ctx))
        if isinstance(poses, Poses):
            return POSES, encode(poses_message(frame, poses, self.ctx))
        if self.ctx.classes:
            return CLASSIFICATION, encode(classification_message(frame, self.ctx))
        return DETECTIONS, encode(detections_message(frame, self.ctx))

    def drop(self, reason: str, cause: str, why: str) -> None:
        """A message not sent: counted as drop `reason`; logged the first time `reason` has this `cause`."""
        self.ctx.stats.drop(reason)
        if (reason, cause) not in self._logged:
            self._logged.add((reason, cause))
            log.warning("%s; counted as %s drops, not logged again", why, reason)
