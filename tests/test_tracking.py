"""Tracking, zones and lines: ids that stay with an object, its life as events, zone entry with inertia,
loitering, line crossings in and out, stillness; then the whole pipeline on a clip of two real pets through the
pet SSD (one walks through a zone and over a line, one sits still)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from app.bench.mot import main as mot_main, params_of
from app.config import CameraConfig, OverlayParams, TrackParams, load_settings
from app.frame import Detection, Frame
from app.outputs.overlay import draw
from app.pipeline import Pipeline
from app.scene import tracker as tracker_module
from app.scene.association import assign, centre_distance, iou_matrix
from app.scene.tracker import END, NEW, UPDATE, Tracker
from app.scene.scene import Scene
from app.scene.zones import IN, OUT, SceneLayout
from conftest import TWO_PETS_FRAMES, TWO_PETS_SIZE, Collector, pet_pipeline

SIZE = (640, 360)


def detection(x: float, y: float = 100.0, label: str = "cat", score: float = 0.8, side: float = 80.0) -> Detection:
    """A box `side` wide and high whose bottom centre is at (x, y + side)."""
    return Detection(label, 0, score, (x - side / 2, y, x + side / 2, y + side))


def layout(**camera) -> SceneLayout:
    config = CameraConfig.model_validate(camera)
    return SceneLayout.build(config.zones, config.lines, SIZE)


def walk(tracker: Tracker | Scene, positions: list[list[Detection]], dt: float = 0.1):
    """Feed frames of detections; return every frame's tracked detections and all events, with times i * dt."""
    frames, events = [], []
    for i, detections in enumerate(positions):
        tracked, new_events = tracker.update(detections, i * dt, i + 1)
        frames.append(tracked)
        events += new_events
    return frames, events


def test_iou_and_matching_take_the_best_pairs():
    a = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], dtype=float)
    b = np.array([[21, 0, 31, 10], [0, 0, 10, 10], [100, 100, 110, 110]], dtype=float)
    iou = iou_matrix(a, b)
    assert iou[0, 1] == 1.0 and iou[0, 2] == 0.0 and 0.8 < iou[1, 0] < 0.9
    assert assign(iou, 0.3) == [(0, 1), (1, 0)]


def test_an_object_keeps_its_id_from_new_to_end():
    tracker = Tracker(TrackParams(min_hits=3, max_lost=5))
    frames, events = walk(tracker, [[detection(100 + 10 * i)] for i in range(20)] + [[]] * 6)
    ids = [d.track_id for frame in frames for d in frame]
    assert ids[:2] == [None, None] and set(ids[2:]) == {1}  # tentative until its third frame
    assert [e.type for e in events] == [NEW, END]
    assert events[1].end == pytest.approx(1.9) and events[1].start == 0.0 and events[1].score == 0.8


def test_two_objects_keep_their_own_ids_and_a_breed_that_flickers_keeps_one():
    tracker = Tracker(TrackParams(min_hits=1))
    positions = [[detection(100 + 10 * i, label="Egyptian_Mau" if i % 3 == 2 else "Bengal", score=0.7),
                  detection(500, label="dog", score=0.6)] for i in range(10)]
    frames, events = walk(tracker, positions)
    assert all([d.track_id for d in frame] == [1, 2] for frame in frames)
    assert Counter(e.type for e in events) == {NEW: 2}  # the settled label stays Bengal: no label update
    assert tracker.tracks[0].label == "Bengal"


def test_a_second_box_on_the_same_object_starts_no_track():
    """One object seen twice under two labels (the pet SSD does this): the weaker box is not a second object."""
    tracker = Tracker(TrackParams(min_hits=1))
    twice = [[detection(300, score=0.8), Detection("dog", 1, 0.4, (255, 95, 345, 185))] for _ in range(5)]
    frames, events = walk(tracker, twice)
    assert [e.type for e in events] == [NEW]
    assert all([d.track_id for d in frame] == [1, None] for frame in frames)


def test_a_lost_object_found_again_within_max_lost_keeps_its_id():
    tracker = Tracker(TrackParams(min_hits=1, max_lost=4))
    positions = [[detection(100 + 10 * i)] if i not in (5, 6, 7) else [] for i in range(12)]
    frames, events = walk(tracker, positions)
    assert {d.track_id for frame in frames for d in frame} == {1}
    assert [e.type for e in events] == [NEW]


def test_a_zone_is_entered_and_left_after_inertia_frames():
    tracker = Scene(Tracker(TrackParams(min_hits=1)), layout(zones={"middle": {"polygon": [[0.4, 0], [0.6, 0],
                                                                                         [0.6, 1], [0.4, 1]],
                                                                             "inertia": 3}}))
    frames, events = walk(tracker, [[detection(x)] for x in range(200, 460, 10)])
    updates = [(e.changes, e.zones) for e in events if e.type == UPDATE]
    assert updates == [(("entered:middle",), ("middle",)), (("left:middle",), ())]
    entered = [i for i, frame in enumerate(frames) if frame[0].zones == ("middle",)]
    # x reaches 256 (0.4 of 640) at frame 6: counted from the third frame in a row inside
    assert entered[0] == 8 and frames[entered[0]][0].zones == ("middle",)
    assert tracker.zones.counts() == {"middle": 0}


def test_zones_reloaded_while_an_object_is_in_one_keep_its_id_and_forget_the_zone_gone():
    everywhere = [[0, 0], [1, 0], [1, 1], [0, 1]]
    tracker = Scene(Tracker(TrackParams(min_hits=1)), layout(zones={"old": {"polygon": everywhere, "inertia": 1}}))
    frames, _ = walk(tracker, [[detection(300)]] * 3)
    assert frames[-1][0].zones == ("old",) and tracker.zones.counts() == {"old": 1}
    tracker.relayout(layout(zones={"new": {"polygon": everywhere, "inertia": 1}}))
    assert tracker.zones.counts() == {"new": 0}
    tracked, _ = tracker.update([detection(300)], 1.0, 4)
    assert tracked[0].track_id == frames[-1][0].track_id and tracked[0].zones == ("new",)
    assert tracker.zones.counts() == {"new": 1}


def test_a_flicker_across_the_edge_shorter_than_inertia_changes_nothing():
    tracker = Scene(Tracker(TrackParams(min_hits=1)), layout(zones={"left": {"polygon": [[0, 0], [0.5, 0], [0.5, 1],
                                                                                     [0, 1]], "inertia": 3}}))
    _, events = walk(tracker, [[detection(x)] for x in [310, 310, 310, 325, 310, 325, 325, 310]])
    assert [e.changes for e in events if e.type == UPDATE] == [("entered:left",)]


def test_zone_labels_and_loitering():
    zones = {"porch": {"polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "inertia": 1, "loitering_s": 1.0,
                       "labels": ["person"]}}
    tracker = Scene(Tracker(TrackParams(min_hits=1)), layout(zones=zones))
    frames, events = walk(tracker, [[detection(100, label="person"), detection(400, label="cat")]
                                    for _ in range(15)], dt=0.1)
    # inertia 1 and min_hits 1: tracked and in the zone from the first frame, so its new event names the zone
    assert [(e.type, e.track_id, e.zones) for e in events if e.type == NEW] == [(NEW, 1, ("porch",)), (NEW, 2, ())]
    changes = [(e.track_id, e.changes) for e in events if e.type == UPDATE]
    assert changes == [(1, ("loitering:porch",))]
    assert [d.zones for d in frames[-1]] == [("porch",), ()]
    assert tracker.zones.counts() == {"porch": 1}


def test_a_line_counts_crossings_in_and_out_once_each():
    """`from` top, `to` bottom: left to right is in. A step beyond the segment's end crosses nothing."""
    tracker = Scene(Tracker(TrackParams(min_hits=1)), layout(lines={"gate": {"from": [0.5, 0], "to": [0.5, 0.9]}}))
    there_and_back = [*range(200, 460, 20), *range(440, 180, -20)]
    _, events = walk(tracker, [[detection(x)] for x in there_and_back])
    assert [e.changes for e in events if e.type == UPDATE] == [("crossed:gate:in",), ("crossed:gate:out",)]
    assert tracker.lines.counts == {"gate": {IN: 1, OUT: 1}}
    below = Scene(Tracker(TrackParams(min_hits=1)), layout(lines={"gate": {"from": [0.5, 0], "to": [0.5, 0.3]}}))
    walk(below, [[detection(x)] for x in range(200, 460, 20)])  # its point (y 180) passes below the segment
    assert below.lines.counts == {"gate": {IN: 0, OUT: 0}}


def test_a_still_object_becomes_stationary_and_moving_again():
    tracker = Tracker(TrackParams(min_hits=1, stationary_s=1.0))
    positions = [[detection(300)]] * 15 + [[detection(300 + 15 * i)] for i in range(1, 6)]
    frames, events = walk(tracker, positions, dt=0.1)
    assert [(e.type, e.changes, e.stationary) for e in events] == [
        (NEW, (), False), (UPDATE, ("stationary",), True), (UPDATE, ("moving",), False)]


def test_finish_ends_every_confirmed_track():
    tracker = Tracker(TrackParams(min_hits=3))
    walk(tracker, [[detection(100), detection(400)]] * 3 + [[detection(100), detection(400), detection(250)]])
    assert sorted(e.track_id for e in tracker.finish(9) if e.type == END) == [1, 2] and not tracker.tracks


def test_zones_and_lines_are_fractions_or_pixels_and_checked():
    fractions = layout(zones={"a": {"polygon": [[0, 0], [0.5, 0], [0.5, 1]]}})
    pixels = layout(zones={"a": {"polygon": [[0, 0], [320, 0], [320, 360]]}})
    np.testing.assert_array_equal(fractions.zones[0].polygon, pixels.zones[0].polygon)
    for wrong, message in [({"zones": {"a": {"polygon": [[0, 0], [1, 1]]}}}, "at least 3"),
                           ({"zones": {"a": {"polygon": [[0, 0], [1, -1], [1, 1]]}}}, "never negative"),
                           ({"lines": {"g": {"from": [0.5, 0], "to": [0.5, 0]}}}, "the same point"),
                           ({"zones": {"a/b": {"polygon": [[0, 0], [1, 0], [1, 1]]}}}, "zone or line name")]:
        with pytest.raises(ValueError, match=message):
            CameraConfig.model_validate(wrong)


# --- the whole pipeline, on two real pets


def test_two_pets_each_keep_one_id_and_the_walker_enters_leaves_and_crosses_once(tmp_path, two_pets_clip):
    _, height = TWO_PETS_SIZE
    config = tmp_path / "config.yaml"
    config.write_text(f"""
camera:
  source: {two_pets_clip}
  realtime: true
  zones:
    middle: {{polygon: [[0.4, 0], [0.6, 0], [0.6, 0.7], [0.4, 0.7]]}}
  lines:
    gate: {{from: [0.7, 0], to: [0.7, 0.7]}}
""")
    pet_pipeline(tmp_path, postprocess={"min_score": 0.3}, track={"stationary_s": 1.0, "max_lost": 10})
    settings = load_settings(str(tmp_path / "pets.yaml"), config)
    collector = Collector()
    Pipeline(settings, [collector]).run()
    results = collector.results
    assert len(results) >= TWO_PETS_FRAMES * 0.8  # a paced file drops only what a slow machine cannot keep up with
    walker = [d for r in results for d in r["detections"] if d["box"][3] < height * 0.5]
    sitter = [d for r in results for d in r["detections"] if d["box"][1] > height * 0.5]
    main_ids = []
    for seen in (walker, sitter):
        ids = Counter(d.get("track_id") for d in seen)  # a second, weaker box on the same pet has none
        (main, count), = Counter({i: n for i, n in ids.items() if i is not None}).most_common(1)
        assert count >= 0.95 * len(results) - 2, ids  # every frame but its first, tentative ones
        main_ids.append(main)
    walker_id, sitter_id = main_ids
    objects = collector.objects
    assert sorted((e.track_id, e.type) for e in objects if e.type != UPDATE) == sorted(
        [(walker_id, NEW), (walker_id, END), (sitter_id, NEW), (sitter_id, END)])
    walker_changes = [c for e in objects if e.track_id == walker_id for c in e.changes]
    assert walker_changes == ["entered:middle", "left:middle", "crossed:gate:in"]
    sitter_changes = [c for e in objects if e.track_id == sitter_id for c in e.changes]
    assert sitter_changes == ["stationary"]


def test_the_overlay_draws_zones_lines_and_track_ids():
    camera_scene = layout(zones={"middle": {"polygon": [[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]}},
                         lines={"gate": {"from": [0.9, 0.1], "to": [0.9, 0.9]}})

    def drawn(zones: bool, track_id: int | None) -> np.ndarray:
        frame = Frame(np.zeros((360, 640, 3), np.uint8), 1, "test", scene=camera_scene,
                      detections=[Detection("cat", 0, 0.9, (20, 200, 120, 300), track_id)])
        return draw(frame, OverlayParams(boxes=True, banner=False, zones=zones), 10.0)

    with_scene, without = drawn(True, None), drawn(False, None)
    for x, y in [(320, 90), (160, 180), (576, 180)]:  # the zone's top and left edges, the line's middle
        assert with_scene[y, x].min() > 200 and without[y, x].max() == 0  # white, anti-aliased
    assert np.count_nonzero(drawn(False, 7)) > np.count_nonzero(without)  # "cat 0.90 #7" is the longer label


def test_a_tracked_detection_keeps_what_other_stages_attached():
    tracker = Tracker(TrackParams(min_hits=1))
    named = replace(detection(300), attributes={"name": "Felix"})
    tracked, _ = tracker.update([named], 0.0, 1)
    assert tracked[0].track_id == 1 and tracked[0].attributes == {"name": "Felix"}


# --- association and motion (issue 21)


def test_min_hits_are_in_a_row_and_a_miss_starts_the_count_again():
    tracker = Tracker(TrackParams(min_hits=3))
    frames, events = walk(tracker, [[detection(100 + 10 * i)] if i in (0, 2, 4, 5, 6) else [] for i in range(7)])
    assert [frame[0].track_id for frame in frames if frame] == [None, None, None, None, 1]  # hits at 1, 3, 5: none
    assert [e.type for e in events] == [NEW]


def test_the_assignment_is_optimal_where_the_best_pair_first_leaves_one_unmatched():
    assert assign(np.array([[0.9, 0.8], [0.7, 0.0]]), 0.3) == [(0, 1), (1, 0)]  # greedy: only (0, 0)
    assert assign(np.array([[0.35, 0.29], [0.31, 0.0]]), 0.3) == [(0, 0)]  # a pair below 0.3 steers nothing
    assert assign(np.zeros((0, 3)), 0.3) == []


def test_an_object_hidden_for_several_frames_is_found_where_its_motion_takes_it():
    """Hidden for 5 frames at 20 px a frame, it is found 120 px from where it was last seen (its box is 80 wide)."""
    tracker = Tracker(TrackParams(min_hits=1, max_lost=10))
    frames, events = walk(tracker, [[detection(100 + 20 * i)] if not 10 <= i < 15 else [] for i in range(20)])
    assert {d.track_id for frame in frames for d in frame} == {1} and [e.type for e in events] == [NEW]


def test_with_smooth_a_tracked_box_is_the_filters_steadier_estimate():
    jitter = np.random.default_rng(0).normal(0, 3, 40)
    positions = [[detection(100 + 5 * i + jitter[i])] for i in range(40)]

    def wobble(smooth: bool) -> float:
        frames, _ = walk(Tracker(TrackParams(min_hits=1, smooth=smooth)), positions)
        centres = np.array([(frame[0].box[0] + frame[0].box[2]) / 2 for frame in frames[10:]])
        return float(np.std(centres - (100 + 5 * np.arange(10, 40))))

    assert wobble(False) == pytest.approx(np.std(jitter[10:]))  # the model's boxes as they came
    assert wobble(True) < 0.9 * wobble(False)  # 1.9 against 2.4 px


# --- the assignment's cost, and the run's first frames (issue 21: beating SORT on MOT15)


def test_the_assignment_takes_as_many_pairs_as_can_be_then_the_best_sum_less_the_penalty():
    assert assign(np.array([[0.9, 0.35], [0.35, 0.0]]), 0.3) == [(0, 1), (1, 0)]  # not (0, 0) alone, the best sum
    assert assign(np.array([[0.5, 0.5]]), 0.3, np.array([[0.2, 0.1]])) == [(0, 1)]
    assert assign(np.array([[0.4, 0.2]]), 0.3, np.array([[1.0, 0.0]])) == [(0, 0)]  # below 0 after it, still a pair


def test_centre_distance_is_the_squared_distance_of_the_centres_over_the_enclosing_boxs_squared_diagonal():
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0]])
    assert centre_distance(boxes, boxes) == pytest.approx(np.array([[0.0, 100 / 500], [100 / 500, 0.0]]))


def test_a_detection_overlapping_two_tracks_goes_to_the_one_whose_centre_is_nearer(monkeypatch):
    """The detection overlaps the long box (IoU 0.375) more than the shifted one (0.329), but its centre is nearer
    the shifted one's: with the centres counted it continues that track (id 1), on IoU alone the other (id 2)."""
    shifted = Detection("person", 0, 0.9, (83.0, 130.0, 163.0, 210.0))
    long = Detection("person", 0, 0.9, (109.0, 101.0, 285.0, 177.0))
    between = Detection("person", 0, 0.9, (100.0, 100.0, 180.0, 180.0))

    def continued_by() -> int | None:
        frames, _ = walk(Tracker(TrackParams(min_hits=1)), [[shifted, long]] * 3 + [[between]])
        assert [d.track_id for d in frames[0]] == [1, 2]
        return frames[-1][0].track_id

    assert continued_by() == 1
    monkeypatch.setattr(tracker_module, "CENTRE_WEIGHT", 0.0)
    assert continued_by() == 2


def test_with_confirm_at_start_what_is_in_view_on_the_first_frames_is_tracked_at_once():
    params = TrackParams(min_hits=3, confirm_at_start=True)
    frames, events = walk(Tracker(params), [[detection(100 + 5 * i)] + ([detection(400)] if i >= 4 else [])
                                            for i in range(8)])
    assert [d.track_id for d in frames[0]] == [1] and events[0].type == NEW and events[0].seq == 1
    assert [frame[1].track_id for frame in frames[4:]] == [None, None, 2, 2]  # it came later: min_hits in a row
    frames, _ = walk(Tracker(params.model_copy(update={"confirm_at_start": False})), [[detection(100)]] * 3)
    assert [frame[0].track_id for frame in frames] == [None, None, 1]


def test_the_mot_harness_takes_track_parameters_and_refuses_an_unknown_one_in_one_line(capsys):
    assert params_of(["confirm_at_start=true", "min_hits=2"]) == TrackParams(confirm_at_start=True, min_hits=2)
    assert mot_main(["/nonexistent", "--set", "min_hit=2"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_with_coast_an_object_missed_for_three_frames_is_handed_on_where_its_motion_takes_it_with_its_id():
    """Walking 20 px a frame and missed for 3 frames: with coast 3 it is in each of them, at the box its motion
    predicts, marked with the frames it has been lost, and found again with the same id; coast 2 shows 2 of the 3
    frames and 0 (the default) none."""
    walking = [[detection(100 + 20 * i)] if not 10 <= i < 13 else [] for i in range(16)]
    for coast, shown in ((3, [1, 2, 3]), (2, [1, 2]), (0, [])):
        frames, events = walk(Tracker(TrackParams(min_hits=1, coast=coast)), walking)
        gap = [(i, d) for i in range(10, 13) for d in frames[i]]
        assert [d.attributes for _, d in gap] == [{"coasted": n} for n in shown]
        assert all(abs((d.box[0] + d.box[2]) / 2 - (100 + 20 * i)) < 6 for i, d in gap)  # its box is 80 wide
        assert [d.track_id for frame in frames for d in frame] == [1] * (13 + len(shown))
        assert [e.type for e in events] == [NEW]


def test_a_tentative_track_is_not_coasted():
    frames, _ = walk(Tracker(TrackParams(min_hits=3, coast=3)), [[detection(100)], [detection(110)], [], []])
    assert [len(frame) for frame in frames] == [1, 1, 0, 0]
