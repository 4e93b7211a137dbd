"""person_down: on the real cascade (YOLOv8n, track, MoveNet on the crop), grace_hopper.bmp turned on its side and
held for `down_s` seconds of frame stamps is one `person_down` event, and upright it is none; the monitor's rules on
keypoints made by hand: the torso's angle (to the hips, or square to the shoulders), the head low in the box,
low-scoring keypoints unused, once per episode and again after getting up, and a track's episode forgotten when it
ends."""

from __future__ import annotations

from dataclasses import replace

import cv2
import pytest

from app.config import TrackParams
from app.config.pipeline import PersonDownParams
from app.frame import Detection
from app.scene.person_down import PERSON_DOWN, PersonDownMonitor, Posed
from app.scene.scene import Scene
from app.scene.tracker import NEW, Tracker
from cascade import Cascade
from conftest import IMAGES, imread

#: the person's box in the hand-made poses below
BOX = (0.0, 0.0, 200.0, 400.0)


def held(tmp_path, image, seconds: float, step: float = 0.5) -> list[tuple[float, list]]:
    """`image` through the cascade with person_down (down_s 3) for `seconds` of stamps: each frame's time and
    object events."""
    cascade = Cascade(tmp_path, {"labels": ["person"], "person_down": {"down_s": 3}}, track={"min_hits": 1})
    times = [100 + step * i for i in range(int(seconds / step) + 1)]
    return [(t, cascade.frame(image, t).objects) for t in times]


def test_grace_hopper_on_her_side_for_three_seconds_is_one_person_down_and_upright_none(tmp_path):
    grace = imread(IMAGES / "grace_hopper.bmp")
    down = held(tmp_path, cv2.rotate(grace, cv2.ROTATE_90_CLOCKWISE), 6.0)
    fired = [(t, event) for t, events in down for event in events if event.type == PERSON_DOWN]
    (person,) = [event for _, events in down for event in events if event.type == NEW and event.label == "person"]
    assert [(t, event.track_id, event.label) for t, event in fired] == [(103.0, person.track_id, "person")]
    assert fired[0][1].as_dict()["type"] == PERSON_DOWN
    upright = held(tmp_path, grace, 6.0)
    assert [event for _, events in upright for event in events if event.type == PERSON_DOWN] == []


def pose(**points: tuple[float, float, float]) -> list[dict]:
    """Keypoints by name: (x, y, score)."""
    return [{"name": name, "x": x, "y": y, "score": score} for name, (x, y, score) in points.items()]


STANDING = pose(nose=(100, 40, 0.8), left_shoulder=(140, 100, 0.8), right_shoulder=(60, 100, 0.8),
                left_hip=(130, 220, 0.6), right_hip=(70, 220, 0.6))
#: lying along the box: shoulders at the left, hips at the right
LYING = pose(nose=(20, 200, 0.8), left_shoulder=(60, 160, 0.8), right_shoulder=(60, 240, 0.8),
             left_hip=(180, 170, 0.6), right_hip=(180, 230, 0.6))


def down_at(monitor: PersonDownMonitor, keypoints: list[dict], times: list[float], box=BOX) -> list[float]:
    """The times at which track 1 in pose `keypoints` fires."""
    return [t for t in times if monitor.update([Posed(1, box, keypoints)], t)]


def test_a_torso_lying_fires_once_after_down_s_and_again_after_getting_up():
    monitor = PersonDownMonitor(PersonDownParams(down_s=3))
    assert down_at(monitor, STANDING, [0, 1, 2, 3, 4, 5]) == []
    assert down_at(monitor, LYING, [10, 11, 12, 12.9, 13, 14, 20]) == [13]
    assert down_at(monitor, STANDING, [21]) == []
    assert down_at(monitor, LYING, [22, 25]) == [25]


@pytest.mark.parametrize("keypoints, box, down", [
    (pose(left_shoulder=(60, 160, 0.8), right_shoulder=(60, 240, 0.8)), BOX, True),  # hips unseen: shoulders' line
    (pose(left_shoulder=(140, 100, 0.8), right_shoulder=(60, 100, 0.8)), BOX, False),
    (pose(left_shoulder=(60, 160, 0.8), right_shoulder=(60, 240, 0.8), left_hip=(60, 300, 0.05)), BOX, True),
    (pose(left_shoulder=(100, 100, 0.8), left_hip=(105, 220, 0.8)), BOX, False),  # one of each is enough
    (pose(left_shoulder=(100, 100, 0.8), left_hip=(220, 130, 0.8)), BOX, True),
    (pose(nose=(100, 300, 0.8)), BOX, True),  # the head low in the box: down whatever the torso
    (pose(nose=(100, 300, 0.1)), BOX, False),  # a keypoint scoring too low is not used
    (pose(nose=(100, 200, 0.8)), BOX, False),
    (pose(right_wrist=(100, 300, 0.9)), BOX, False),  # nothing to judge by
], ids=["shoulders-vertical", "shoulders-level", "a-low-score-hip-unused", "torso-upright", "torso-lying",
        "head-low", "head-low-unsure", "head-middle", "no-torso-no-head"])
def test_what_counts_as_down(keypoints, box, down):
    monitor = PersonDownMonitor(PersonDownParams(down_s=1))
    assert bool(down_at(monitor, keypoints, [0, 1], box)) is down


def test_an_ended_tracks_episode_is_forgotten():
    monitor = PersonDownMonitor(PersonDownParams(down_s=3))
    assert down_at(monitor, LYING, [0, 2]) == []
    monitor.retain([])
    assert down_at(monitor, LYING, [3, 4]) == []  # its time down starts again
    assert down_at(monitor, LYING, [6]) == [6]


def test_the_scene_makes_the_monitors_events_from_its_tracks_and_forgets_the_tracks_that_end():
    """The scene's person_down event carries its track's facts (label, start); new parameters keep the episode
    under way; a track that ends leaves no episode behind."""
    scene = Scene(Tracker(TrackParams(min_hits=1, max_lost=1)))
    scene.watch_poses(PersonDownParams(down_s=10))
    person = Detection("person", 0, 0.9, BOX)
    for t in (5.0, 6.0):
        if t == 6.0:  # a reload: the episode under way goes on under the new down_s
            scene.watch_poses(PersonDownParams(down_s=1))
        tracked, _ = scene.update([person], t)
        events = scene.pose_events([replace(d, attributes={"keypoints": LYING}) for d in tracked], t, seq=7)
    (event,) = events
    assert (event.type, event.track_id, event.label, event.start, event.seq) == (PERSON_DOWN, 1, "person", 5.0, 7)
    for t in (7.0, 8.0):
        tracked, _ = scene.update([], t)
        assert scene.pose_events(tracked, t) == []
    assert scene.person_down is not None and scene.person_down._down_since == {}
