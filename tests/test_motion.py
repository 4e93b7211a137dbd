"""Motion gating: the detector on real pictures (still, something moving, a masked region), the gate's rules
(keep-alive, tracked objects, detect_fps), and the pipeline on a still live scene: inference on a few frames only,
the skipped ones counted as no_motion, the duty cycle in the stats; on the moving clip nothing is missed."""

from __future__ import annotations

import json
import threading
from collections import Counter

import cv2
import numpy as np
import pytest

from app.capture_lane import CaptureLane
from app.config import MotionConfig, load_settings
from app.metrics import Stats
from app.scene.motion import MotionDetector, MotionGate
from app.pipeline import Pipeline
from conftest import IMAGES, PET, Background, Collector, FakeCamera, imread, pet_pipeline, wait_for

CAT = imread(IMAGES / "cat_720p.jpg")


def with_square(image: np.ndarray, x: int, y: int = 300, side: int = 120) -> np.ndarray:
    """`image` with a black square at (x, y): something that moved there."""
    out = image.copy()
    out[y:y + side, x:x + side] = 0
    return out


def test_a_still_picture_does_not_move_and_a_new_object_does_where_it_is():
    detector = MotionDetector(MotionConfig())
    assert detector.detect(CAT).boxes  # the first frame: nothing to compare with
    for _ in range(5):
        still = detector.detect(CAT)
        assert not still.boxes and still.fraction < 0.001
    moved = detector.detect(with_square(CAT, 600))
    assert moved.fraction > 0.005 and len(moved.boxes) == 1
    x0, y0, x1, y1 = moved.boxes[0]
    assert x0 <= 600 < 720 <= x1 + 20 and y0 <= 300 < 420 <= y1 + 20  # in frame pixels, within the blur


def test_motion_in_a_mask_does_not_count():
    mask = [[(0.4, 0.3), (0.65, 0.3), (0.65, 0.7), (0.4, 0.7)]]  # around the square at x 600-720, y 300-420
    detector = MotionDetector(MotionConfig(mask=mask))
    detector.detect(CAT)
    assert not detector.detect(with_square(CAT, 600)).boxes
    assert detector.detect(with_square(CAT, 100)).boxes  # outside the mask it does


#: around the square at x 600-720, y 300-420 of the 1280 x 720 picture, in its pixels
PIXEL_MASK: list[list[tuple[float, float]]] = [[(560, 260), (760, 260), (760, 460), (560, 460)]]


def test_a_pixel_mask_is_in_the_frames_pixels():
    detector = MotionDetector(MotionConfig(mask=PIXEL_MASK))
    detector.detect(CAT)
    assert not detector.detect(with_square(CAT, 600)).boxes
    assert detector.detect(with_square(CAT, 100)).boxes  # outside the mask it does


@pytest.mark.parametrize("scale", [1, 2])
def test_a_pixel_mask_is_in_the_cameras_pixels_whatever_the_decode_scale(scale):
    mask = json.dumps(PIXEL_MASK)
    settings = load_settings("classify", None, ["camera.fourcc=MJPG", "camera.width=1280", "camera.height=720",
                                                "camera.motion.enabled=true", f"camera.motion.mask={mask}"])
    lane = CaptureLane(settings, FakeCamera(), (224, 224), [], Stats(), threading.Event(), lambda: None)
    assert lane.gate is not None

    def decoded(image: np.ndarray) -> np.ndarray:  # as libjpeg gives it at 1/scale
        return cv2.resize(image, (1280 // scale, 720 // scale), interpolation=cv2.INTER_AREA)

    lane.gate.keepalive_s = 1e9
    lane.gate.admit(decoded(CAT), 0.0)
    assert lane.gate.admit(decoded(with_square(CAT, 600)), 0.1)[0] == "no_motion"  # in the mask
    assert lane.gate.admit(decoded(with_square(CAT, 100)), 0.2)[0] is None


def gate(**config) -> tuple[MotionGate, list[bool]]:
    tracking: list[bool] = [False]
    detect_fps = config.pop("detect_fps", 0.0)
    enabled = config.pop("enabled", True)
    return MotionGate(MotionConfig(**config), enabled, detect_fps, lambda: tracking[0]), tracking


def test_a_still_scene_is_inferred_at_the_keepalive_and_while_an_object_is_tracked():
    still, tracking = gate(keepalive_s=1.0)
    verdicts = [still.admit(CAT, t / 10)[0] for t in range(30)]  # 3 s at 10 fps
    assert [t for t, v in enumerate(verdicts) if v is None] == [0, 10, 20]
    assert Counter(verdicts)["no_motion"] == 27
    tracking[0] = True
    assert still.admit(CAT, 3.05)[0] is None
    assert still.document() == {"enabled": True, "captured": 31, "inferred": 4, "duty_cycle": round(4 / 31, 4)}


def test_motion_is_inferred_at_once():
    moving, _ = gate(keepalive_s=100)
    assert [moving.admit(with_square(CAT, 100 + 40 * t), t / 10)[0] for t in range(5)] == [None] * 5


def test_detect_fps_caps_the_inferred_frames_with_or_without_motion_gating():
    capped, _ = gate(enabled=False, detect_fps=5.0)
    verdicts = [capped.admit(CAT, t / 30)[0] for t in range(30)]  # 1 s at 30 fps
    assert Counter(verdicts) == {None: 5, "detect_fps": 25}
    assert capped.detector is None


@pytest.mark.parametrize(("enabled", "live", "expected"), [("auto", True, True), ("auto", False, False),
                                                          (False, True, False), (True, False, True)])
def test_auto_gates_live_sources_only(enabled, live, expected):
    settings = load_settings("detect", None, [*PET, f"camera.motion.enabled={str(enabled).lower()}"])
    pipeline = Pipeline(settings, [], FakeCamera(live=live))
    assert (pipeline.capture.gate is not None and pipeline.capture.gate.detector is not None) == expected


def test_a_still_live_scene_is_inferred_on_few_frames_and_the_rest_counted(tmp_path):
    """A looped still picture of a cat: inferred until the cat is tracked as stationary, then at the keep-alive."""
    pet_pipeline(tmp_path, track={"stationary_s": 0.5})
    settings = load_settings(str(tmp_path / "pets.yaml"), None, ["camera.motion.keepalive_s=5"])
    camera = FakeCamera([CAT], pause=0.01)
    collector = Collector()
    pipeline = Pipeline(settings, [collector], camera)
    assert pipeline.capture.gate is not None
    gating = pipeline.capture.gate
    with Background(pipeline):
        wait_for(lambda: collector.objects and collector.objects[-1].stationary, "the cat to be stationary", 20)
        warm = gating.captured, gating.inferred
        wait_for(lambda: gating.captured >= warm[0] + 100, "100 more frames", 30)
        after = gating.captured - warm[0], gating.inferred - warm[1]
        stats = pipeline.stats.document()
    assert after[1] <= 0.1 * after[0], after
    assert stats["drops"]["no_motion"] >= after[0] - after[1]
    assert stats["motion"]["enabled"] and 0 < stats["motion"]["duty_cycle"] < 1


def test_gating_misses_nothing_the_ungated_run_found_on_the_moving_clip(tmp_path, two_pets_clip):
    """The two pets' clip, paced like a camera: gated, each pet is still found with one id in most frames."""
    pet_pipeline(tmp_path, postprocess={"min_score": 0.3}, track={})

    def objects_found(motion: str) -> int:
        """How many tracked objects were seen in more than 5 frames."""
        settings = load_settings(str(tmp_path / "pets.yaml"), None, [
            f"camera.source={two_pets_clip}", "camera.realtime=true", f"camera.motion.enabled={motion}"])
        collector = Collector()
        Pipeline(settings, [collector]).run()
        frames = Counter(d["track_id"] for r in collector.results for d in r["detections"] if d.get("track_id"))
        return sum(1 for count in frames.values() if count > 5)

    ungated = objects_found("false")
    assert ungated == 2 and objects_found("true") == ungated


def test_the_overlay_can_draw_the_regions_that_moved():
    from app.config import OverlayParams
    from app.frame import Frame
    from app.outputs.overlay import draw

    detector = MotionDetector(MotionConfig())
    detector.detect(CAT)
    frame = Frame(with_square(CAT, 600), 1, "test", motion=detector.detect(with_square(CAT, 600)))
    drawn = draw(frame, OverlayParams(boxes=False, banner=False, motion=True), 10.0)
    plain = draw(frame, OverlayParams(boxes=False, banner=False, motion=False), 10.0)
    assert frame.motion is not None
    x0, y0, _, _ = frame.motion.boxes[0]
    assert drawn[y0, x0 + 5].tolist() == [0, 0, 255] and not np.array_equal(drawn, plain)  # red, in BGR


def test_skipped_frames_feed_the_watchdog():
    """On a still scene results come only at the keep-alive; the frames gating skips show the pipeline is alive."""
    from app.metrics import Stats
    from app.service import ServiceMonitor

    stats = Stats()
    monitor = ServiceMonitor(stats)
    assert not monitor.frames_flowing()
    stats.skipped("no_motion")
    assert monitor.frames_flowing() and stats.drops["no_motion"] == 1
