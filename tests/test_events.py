"""Events with hysteresis, and the overlay and JPEGs every publisher shares."""

from __future__ import annotations

import numpy as np

from app.config import OverlayParams
from app.scene.label_events import Event, LabelEvents
from app.frame import BGR, RGB, Detection, Frame
from app.outputs.overlay import label_colour
from app.outputs.base import Output
from conftest import IMAGES, decode_jpeg, imread


def _frame(*labels: str, score: float = 0.9) -> Frame:
    frame = Frame(np.zeros((72, 128, 3), np.uint8), 1, "cam")
    frame.detections = [Detection(label, 0, score, (10, 10, 50, 50)) for label in labels]
    return frame


def _feed(tracker: LabelEvents, *frames: Frame) -> list[Event]:
    return [event for frame in frames for event in tracker.update(frame)]


def test_a_label_appears_changes_and_clears_once_each():
    tracker = LabelEvents(None, 0.5, appear_frames=2, clear_frames=3)
    assert _feed(tracker, _frame("person")) == []
    assert _feed(tracker, _frame("person")) == [Event("appeared", "person", 1, 0)]
    assert _feed(tracker, _frame("person", "person"), _frame("person", "person")) == [
        Event("changed", "person", 2, 1)]
    assert _feed(tracker, _frame(), _frame()) == []
    assert _feed(tracker, _frame()) == [Event("cleared", "person", 0, 2)]
    assert tracker.counts == {"person": 0}


def test_with_tracking_only_tracked_objects_count():
    """A second box on one cat (no track id: the tracker took it for a duplicate) does not make two cats."""
    tracker = LabelEvents(None, 0.5, appear_frames=1, clear_frames=1, tracked_only=True)
    frame = _frame("cat", "cat")
    frame.detections[0] = Detection("cat", 0, 0.9, (10, 10, 50, 50), track_id=1)
    assert _feed(tracker, frame) == [Event("appeared", "cat", 1, 0)]
    assert LabelEvents(None, 0.5, 1, 1).update(frame) == [Event("appeared", "cat", 2, 0)]


def test_one_flickering_frame_fires_nothing():
    tracker = LabelEvents(None, 0.5, appear_frames=2, clear_frames=3)
    _feed(tracker, _frame("car"), _frame("car"))
    assert _feed(tracker, _frame(), _frame("car"), _frame("truck"), _frame("car")) == []
    assert tracker.counts["car"] == 1


def test_only_watched_labels_and_scores_count():
    tracker = LabelEvents(["person"], 0.6, appear_frames=1, clear_frames=1)
    assert tracker.counts == {"person": 0}
    assert _feed(tracker, _frame("cat"), _frame("person", score=0.5)) == []
    assert _feed(tracker, _frame("person", score=0.7)) == [Event("appeared", "person", 1, 0)]


LABELS = [f"label{n:02d}" for n in range(40)]  # as many as a set would, with any hash seed, iterate out of order


def test_events_of_one_frame_come_in_the_configured_order_of_the_watched_labels():
    watched = LABELS[::-1][::2] + LABELS[::2]  # neither sorted nor in any order a set of them is likely to keep
    tracker = LabelEvents(watched, 0.5, appear_frames=1, clear_frames=1)
    appeared = _feed(tracker, _frame(*sorted(LABELS)))
    assert [e.label for e in appeared] == watched and {e.kind for e in appeared} == {"appeared"}
    assert [e.label for e in _feed(tracker, _frame())] == watched  # all cleared, in the same order


def test_events_of_one_frame_come_sorted_by_label_when_every_label_counts():
    tracker = LabelEvents(None, 0.5, appear_frames=1, clear_frames=1)
    shuffled = LABELS[1::2] + LABELS[::2]
    assert [e.label for e in _feed(tracker, _frame(*shuffled))] == LABELS
    assert [e.label for e in _feed(tracker, _frame(*shuffled[:10]))] == sorted(set(LABELS) - set(shuffled[:10]))


def test_overlay_draws_on_a_copy_and_jpegs_are_cached():
    frame = Frame(imread(IMAGES / "cat.bmp"), 1, "cam")
    original = frame.image.copy()
    frame.detections = [Detection("Egyptian_Mau", 11, 0.9, (185, 35, 338, 221))]
    out = Output(frame, {}, [], {}, OverlayParams(), 12.0)
    annotated = out.annotated()
    assert np.array_equal(frame.image, original)
    assert tuple(annotated[100, 185]) == label_colour("Egyptian_Mau")[::-1]  # the box's left edge, in BGR
    assert out.annotated() is annotated
    jpeg = out.jpeg(width=256)
    assert jpeg.startswith(b"\xff\xd8") and out.jpeg(width=256) is jpeg
    assert decode_jpeg(jpeg).shape[1] == 256
    clean = decode_jpeg(out.jpeg(annotated=False))
    assert np.abs(clean.astype(int) - original).mean() < 4  # no boxes, only JPEG noise


def test_an_rgb_frame_is_drawn_in_rgb_and_encoded_with_the_same_colours():
    """A source that delivers RGB (picamera2's lores, a test) keeps it: drawn in RGB, converted only to encode."""
    bgr = imread(IMAGES / "cat.bmp")
    detections = [Detection("Egyptian_Mau", 11, 0.9, (185, 35, 338, 221))]
    outs = [Output(Frame(image, 1, "cam", order, ts=1764140000.0, detections=detections), {}, [], {},
                   OverlayParams(), 12.0)
            for image, order in ((bgr, BGR), (np.ascontiguousarray(bgr[..., ::-1]), RGB))]
    assert tuple(outs[1].annotated()[100, 185]) == label_colour("Egyptian_Mau")
    np.testing.assert_array_equal(outs[1].annotated(), outs[0].annotated()[..., ::-1])
    assert outs[1].jpeg() == outs[0].jpeg()


def test_label_colours_are_stable_and_differ():
    assert label_colour("person") == label_colour("person")
    assert len({label_colour(label) for label in ("person", "car", "dog", "cat", "bicycle")}) >= 4


def test_a_reload_keeps_the_counts_of_the_labels_still_watched():
    """No event fires only because the watched labels or thresholds were reloaded; a newly watched label starts
    at 0."""
    tracker = LabelEvents(["cat", "dog"], 0.5, appear_frames=1, clear_frames=1)
    assert _feed(tracker, _frame("cat", "dog")) == [Event("appeared", "cat", 1, 0), Event("appeared", "dog", 1, 0)]
    reloaded = tracker.reconfigured(["cat", "bird"], 0.5, appear_frames=1, clear_frames=1)
    assert reloaded.counts == {"cat": 1, "bird": 0}
    assert _feed(reloaded, _frame("cat", "dog")) == []
    every = tracker.reconfigured(None, 0.5, appear_frames=1, clear_frames=1)
    assert every.counts == {"cat": 1, "dog": 1} and _feed(every, _frame("cat", "dog")) == []
