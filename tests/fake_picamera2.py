"""Picamera2 at the hardware boundary, for the tests of the Pi camera source (tests/test_stamps.py) and of its H.264
encoder feeding the clips' ring (tests/test_clips_raw.py): requests carrying a SensorTimestamp and an exposure, a
main stream of cat_720p.jpg and a lores stream as the VC4 ISP gives it."""

from __future__ import annotations

import time

import cv2
import numpy as np

from conftest import IMAGES, imread

CAT = imread(IMAGES / "cat_720p.jpg")


class Request:
    """A completed request: the main stream (BGR), lores as the VC4 ISP gives it (YUV420, I420 layout `stride`
    wide) and the metadata libcamera reported with them."""

    def __init__(self, camera: FakePicamera2, metadata: dict[str, object]) -> None:
        self.camera, self.metadata = camera, metadata

    def make_array(self, name: str) -> np.ndarray:
        if name == "main":
            return CAT.copy()
        lores = cv2.cvtColor(cv2.resize(CAT, (320, 320)), cv2.COLOR_BGR2YUV_I420)  # (480, 320): stride = width
        return lores

    def get_metadata(self) -> dict[str, object]:
        return dict(self.metadata)

    def release(self) -> None:
        self.camera.released += 1


class FakePicamera2:
    """Picamera2 at the hardware boundary: each request carries a SensorTimestamp `age` s before it is returned
    (on CLOCK_MONOTONIC, as the Pi's is) and an ExposureTime of 10 ms; `metadata` overrides what it reports."""

    metadata: dict[str, object] | None = None
    age = 0.02
    made: list[FakePicamera2] = []

    def __init__(self) -> None:
        self.released = 0
        self.sensor_timestamps: list[int] = []
        FakePicamera2.made.append(self)

    def create_video_configuration(self, **streams: object) -> dict[str, object]:
        return dict(streams)

    def configure(self, config: dict[str, object]) -> None:
        pass

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def stream_configuration(self, name: str) -> dict[str, object]:
        return {"size": (320, 320)}

    def capture_request(self, wait: float | None = None) -> Request:
        stamp = time.monotonic_ns() - round(self.age * 1e9)
        self.sensor_timestamps.append(stamp)
        metadata: dict[str, object] = {"SensorTimestamp": stamp, "ExposureTime": 10_000, "FrameDuration": 33_333}
        return Request(self, metadata if self.metadata is None else self.metadata)
