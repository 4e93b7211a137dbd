"""The `camera:` section (and each entry of `cameras:`): the source and its capture, reconnecting, motion gating,
and the camera's zones and lines."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from app.config.base import ACCELERATOR_PATTERN, MAX_FPS, MAX_SIDE, Strict, checked_name


class ReconnectConfig(Strict):
    initial_delay_s: float = Field(1.0, gt=0, le=3600, description="first wait before reopening a failed source")
    max_delay_s: float = Field(5.0, gt=0, le=3600,
                               description="longest wait between reopen attempts (doubling backoff)")


Coordinates = tuple[float, float]


def _no_negative(points: list[Coordinates]) -> None:
    if any(value < 0 for point in points for value in point):
        raise ValueError("coordinates are fractions of the frame (0 to 1) or pixels, never negative")


class ZoneConfig(Strict):
    """A named area of the picture; a tracked object is in it while the bottom centre of its box is."""

    polygon: list[Coordinates] = Field(min_length=3, description="[[x, y], ...]: fractions of the frame (every "
                                       "value 0 to 1) or pixels")
    labels: list[str] = Field([], description="the labels this zone counts (default: all)")
    inertia: int = Field(3, ge=1, le=1000, description="frames in a row inside (or outside) before an object "
                         "counts as entered (or left)")
    loitering_s: float = Field(0.0, ge=0, le=86400, description="seconds in the zone before an object is "
                               "loitering (an update event); 0: never")

    @field_validator("polygon")
    @classmethod
    def _polygon_has_no_negative(cls, value: list[Coordinates]) -> list[Coordinates]:
        _no_negative(value)
        return value


class LineConfig(Strict):
    """A named line; an object whose point goes across it is counted `in` (from the left of `from` → `to` as
    drawn on the image, so left to right for a line drawn downwards) or `out`, once it has stayed on the other side
    `inertia` frames or gone `margin` past it."""

    start: Coordinates = Field(alias="from", description="[x, y]: fractions of the frame or pixels")
    end: Coordinates = Field(alias="to", description="[x, y]")
    labels: list[str] = Field([], description="the labels this line counts (default: all)")
    inertia: int = Field(3, ge=1, le=1000, description="frames in a row on the other side before a crossing "
                         "counts (a touch, or jitter on the line, counts none)")
    margin: float = Field(0.0, ge=0, le=0.5, description="how far past the line, as a share of the frame's smaller "
                          "side, a crossing counts at once, before `inertia` frames; 0: inertia alone")

    @model_validator(mode="after")
    def _a_line_has_length(self) -> LineConfig:
        _no_negative([self.start, self.end])
        if self.start == self.end:
            raise ValueError("from and to are the same point: a line needs two")
        return self


class MotionConfig(Strict):
    """Motion gating (app/scene/motion.py): infer only while something moves or is tracked, and every keepalive_s."""

    enabled: bool | Literal["auto"] = Field("auto", description="auto: on for cameras and streams (and paced "
                                            "files), off for files and images read as fast as they are processed")
    threshold: int = Field(25, ge=1, le=255, description="grey levels a pixel must change by to count as moving")
    min_area: float = Field(0.002, ge=0, le=1, description="the share of the picture that must move")
    keepalive_s: float = Field(10.0, gt=0, le=86400, description="a still scene is inferred at least this often")
    mask: list[list[Coordinates]] = Field([], description="polygons where motion does not count (a clock, a tree)")

    @field_validator("mask")
    @classmethod
    def _polygons(cls, value: list[list[Coordinates]]) -> list[list[Coordinates]]:
        for polygon in value:
            if len(polygon) < 3:
                raise ValueError("each mask polygon needs at least 3 points")
            _no_negative(polygon)
        return value


class CameraConfig(Strict):
    name: str = Field("cam0", description="the camera's name in results, topics and logs")
    source: str = Field(
        "auto",
        description="auto | picamera2 | /dev/videoN | N | rtsp://… | http(s)://… | video file | image, "
        "directory or glob | pattern",
    )
    width: int = Field(1280, gt=0, le=MAX_SIDE, description="capture width (cameras, pattern)")
    height: int = Field(720, gt=0, le=MAX_SIDE, description="capture height (cameras, pattern)")
    fps: float = Field(30.0, gt=0, le=MAX_FPS, description="capture rate asked of cameras; the pattern's rate")
    fourcc: str = Field("", description="V4L2 pixel format, e.g. MJPG for USB cameras that need it for full fps")
    decode_scale: Literal["auto", 1, 2, 4, 8] = Field(
        "auto",
        description="V4L2 with fourcc MJPG: decode frames at 1/N size (libjpeg DCT scaling); auto: the smallest that "
        "still covers the model input, full size when snapshots, MQTT or the HTTP stream at source size need it",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport")
    realtime: bool = Field(False, description="pace video files at their own fps, like a live camera")
    loop: bool = Field(False, description="start a video file or image set again at the end")
    reconnect: ReconnectConfig = ReconnectConfig()
    motion: MotionConfig = MotionConfig()
    detect_fps: float = Field(0.0, ge=0, le=MAX_FPS, description="infer at most this many frames a second (0: "
                              "every frame the model keeps up with)")
    frame_id: str = Field("", pattern=r"^[A-Za-z0-9_/.-]{0,128}$", description="header.frame_id of the robot "
                          "output (ROS 2's camera optical frame); default: the camera's name")
    zones: dict[str, ZoneConfig] = Field({}, description="named areas tracked objects enter and leave")
    lines: dict[str, LineConfig] = Field({}, description="named lines tracked objects cross in and out")

    @field_validator("zones", "lines")
    @classmethod
    def _shapes_arechecked_name(cls, value: dict) -> dict:
        for name in value:
            checked_name(name, "zone or line name")
        return value

    @field_validator("name")
    @classmethod
    def _name_is_a_name(cls, value: str) -> str:
        return checked_name(value, "camera name")

    @field_validator("fourcc")
    @classmethod
    def _fourcc_is_four_chars(cls, value: str) -> str:
        if value and len(value) != 4:
            raise ValueError("must be four characters, e.g. MJPG or YUYV (or empty for the camera's default)")
        return value


class CameraHttpConfig(Strict):
    """What one camera of `cameras:` sets of `http:` for itself."""

    port: int = Field(ge=0, le=65535, description="this camera's page and API (0: any free port); default: derived "
                      "from its name (app/config/cameras.py)")


class CameraEntry(CameraConfig):
    """One of `cameras:`: a camera as `camera:` describes one, plus the pipeline it runs and, optionally, its
    accelerator and its own HTTP port."""

    pipeline: str | None = Field(None, description="the pipeline this camera runs (default: --pipeline, detect)")
    accelerator: str | None = Field(None, pattern=ACCELERATOR_PATTERN,
                                    description="this camera's accelerator (default: the top-level accelerator)")
    http: CameraHttpConfig | None = Field(None, description="{port: N}: this camera's HTTP port (default: derived "
                                          "from its name)")

    def camera(self) -> CameraConfig:
        """The entry as the `camera:` of its own run."""
        return CameraConfig.model_validate(self.model_dump(exclude={"pipeline", "accelerator", "http"},
                                                           by_alias=True))
