"""Pixel-valued zones and lines mean the camera's captured pixels (camera.width x height) whatever the size its
frames are decoded at: an MJPEG camera's `decode_scale: auto` halves the frames when no output needs them whole
(MQTT and snapshots off), and a zone must not move when an output is turned on or off. A file's or stream's
shapes stay in the pixels of its own frames (the config gives no size for them)."""

from __future__ import annotations

import numpy as np
import pytest

from app.config import CameraConfig, TrackParams
from app.frame import Frame
from app.sources.mjpeg import decoded_side
from app.stages.base import StageContext
from app.stages.track import Track

#: the right half of a 1280 x 720 capture, and a line down its middle, in capture pixels
ZONES = {"right": {"polygon": [[640, 0], [1280, 0], [1280, 720], [640, 720]]}}
LINES = {"middle": {"from": [640, 10], "to": [640, 700]}}


def scene_at(camera: CameraConfig, scale: int, track: Track | None = None):
    """The zones and lines the track stage lays on a frame decoded at 1/`scale` of the camera's size."""
    track = track or Track(TrackParams())
    track.start(StageContext(None, None, camera))  # type: ignore[arg-type]  # the track stage uses the camera alone
    size = (decoded_side(camera.width, scale), decoded_side(camera.height, scale))
    frame = track.process(Frame(np.zeros((size[1], size[0], 3), np.uint8), 1, "cam0"))
    assert frame.scene is not None
    return frame.scene


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_a_pixel_zone_and_line_select_the_same_region_at_every_decode_scale(scale):
    camera = CameraConfig.model_validate({"width": 1280, "height": 720, "fourcc": "MJPG", "zones": ZONES,
                                          "lines": LINES})
    scene = scene_at(camera, scale)
    width, height = scene.size
    zone, line = scene.zones[0], scene.lines[0]
    np.testing.assert_allclose(zone.polygon, [[width / 2, 0], [width, 0], [width, height], [width / 2, height]])
    np.testing.assert_allclose([line.start, line.end], [[width / 2, 10 / scale], [width / 2, 700 / scale]])
    assert zone.contains((0.75 * width, height / 2)) and not zone.contains((0.25 * width, height / 2))


def test_a_reloaded_pixel_zone_is_laid_in_capture_pixels_too():
    track = Track(TrackParams())
    camera = CameraConfig.model_validate({"width": 1280, "height": 720, "fourcc": "MJPG", "lines": LINES})
    scene_at(camera, 2, track)
    reloaded = camera.model_copy(update={"zones": CameraConfig.model_validate({"zones": ZONES}).zones})
    track.reconfigure(TrackParams(), StageContext(None, None, reloaded))  # type: ignore[arg-type]
    zone = scene_at(reloaded, 2, track).zones[0]  # the next frame, of the same size, shows the reloaded layout
    np.testing.assert_allclose(zone.polygon, [[320, 0], [640, 0], [640, 360], [320, 360]])


def test_a_files_pixel_zone_is_in_its_frames_pixels():
    camera = CameraConfig.model_validate({"source": "clip.mp4", "zones": ZONES})  # 1280 x 720; the file 640 x 360
    zone = scene_at(camera, 2).zones[0]
    np.testing.assert_allclose(zone.polygon, ZONES["right"]["polygon"])
