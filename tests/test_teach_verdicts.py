"""The teach step on made-up vectors: nearest neighbour with its threshold and margin, only within the detection's
label; a track's majority name; a `--not` detection dropped, counted and taken out of its zones' counts, its track's
events withheld from its `new` to its `end`; the overlay's caption with the name; a gallery written while the run
goes on."""

from __future__ import annotations

import logging

import numpy as np

from app.frame import Detection, Frame
from app.outputs.overlay import box_caption
from app.scene.tracker import END, NEW, UPDATE, ObjectEvent
from app.teach.gallery import Embedder, Example, Gallery
from app.teach.matching import Match, Matcher
from app.teach.verdicts import Verdicts
from app.teach.watch import GalleryWatch


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


GRACE, ADA, STATUE = unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(0, 0, 1, 0)
GALLERY = Gallery(Embedder("e.tflite", "0" * 64), (
    Example("grace", "person", GRACE, True, "grace.jpg"),
    Example("ada", "person", ADA, True, "ada.jpg"),
    Example("not:person", "person", STATUE, False, "statue.jpg"),
))


def test_the_nearest_example_of_the_label_names_it_above_the_threshold_and_beyond_the_margin():
    matcher = Matcher(GALLERY, threshold=0.7, margin=0.1)
    assert matcher.match(unit(1, 0.2, 0, 0), "person") == Match("grace", float(unit(1, 0.2, 0, 0) @ GRACE), True)
    assert matcher.match(unit(0, 0.1, 1, 0), "person").positive is False  # type: ignore[union-attr]
    assert matcher.match(unit(1, 0, 0, 1.2), "person") is None  # 0.64: under the threshold
    assert matcher.match(unit(1, 0.9, 0, 0), "person") is None  # grace 0.74, ada 0.67: within the margin
    assert Matcher(GALLERY, threshold=0.7, margin=0.1).match(GRACE, "dog") is None  # nothing taught on dogs
    assert matcher.labels == {"person"}


def person(track_id: int | None, zones: tuple[str, ...] = ()) -> Detection:
    return Detection("person", 0, 0.9, (0.0, 0.0, 10.0, 10.0), track_id, zones)


def event(kind: str, track_id: int) -> ObjectEvent:
    return ObjectEvent(kind, track_id, "person", 0.9, (0.0, 0.0, 10.0, 10.0), (), 0.0, None, False)


def judged(verdicts: Verdicts, detections: list[Detection], vectors: list[np.ndarray | None], fresh: set[int],
           events: list[ObjectEvent] | None = None, zone_counts: dict[str, int] | None = None) -> Frame:
    frame = Frame(np.zeros((10, 10, 3), np.uint8), 0, "test", detections=detections, objects=list(events or []),
                  zone_counts=dict(zone_counts or {}))
    verdicts.judge(frame, vectors, fresh)
    return frame


def test_a_track_takes_the_name_with_the_most_votes_over_its_life():
    """Votes grace, ada, grace, ada, ada: the name follows the majority, a tie keeps the first to reach it; frames not
    embedded (kept vector) do not vote."""
    verdicts = Verdicts(Matcher(GALLERY, threshold=0.7, margin=0.1))
    names = []
    for vector, fresh in ((GRACE, True), (GRACE, False), (GRACE, False), (ADA, True), (GRACE, True), (ADA, True),
                          (ADA, True)):
        (detection,) = judged(verdicts, [person(7)], [vector], {0} if fresh else set()).detections
        names.append(detection.attributes["name"])
    assert names == ["grace", "grace", "grace", "grace", "grace", "grace", "ada"]
    assert detection.attributes["similarity"] == 1.0


def test_a_detection_near_a_not_example_is_dropped_counted_out_of_its_zones_and_its_tracks_events_withheld():
    verdicts = Verdicts(Matcher(GALLERY, threshold=0.7, margin=0.1))
    frame = judged(verdicts, [person(1, ("yard",)), person(2, ("yard",))], [STATUE, GRACE], {0, 1},
                   [event(NEW, 1), event(NEW, 2)], {"yard": 2})
    assert [d.track_id for d in frame.detections] == [2] and frame.detections[0].attributes["name"] == "grace"
    assert [e.track_id for e in frame.objects] == [2] and frame.zone_counts == {"yard": 1}
    assert verdicts.taught_not == 1
    later = judged(verdicts, [person(1)], [STATUE], set(), [event(UPDATE, 1), event(END, 1), event(END, 2)])
    assert later.detections == [] and [(e.type, e.track_id) for e in later.objects] == [(END, 2)]
    assert verdicts.taught_not == 2 and verdicts._votes == {} and verdicts._hidden == set()
    untracked = judged(verdicts, [person(None), person(None)], [STATUE, None], {0})
    assert untracked.detections == [person(None)] and verdicts.taught_not == 3


def test_a_track_judged_not_after_its_new_went_out_keeps_its_events():
    """Its detections are dropped from then on, but its `end` still closes what its `new` opened."""
    verdicts = Verdicts(Matcher(GALLERY, threshold=0.7, margin=0.1))
    assert judged(verdicts, [person(3)], [None], set(), [event(NEW, 3)]).objects == [event(NEW, 3)]
    dropped = judged(verdicts, [person(3)], [STATUE], {0}, [event(END, 3)])
    assert dropped.detections == [] and dropped.objects == [event(END, 3)]


def test_the_overlay_shows_a_taught_name_after_the_label():
    named = Detection("person", 0, 0.92, (0.0, 0.0, 10.0, 10.0), 3, attributes={"name": "grace", "similarity": 0.8})
    assert box_caption(named) == "person grace 0.92 #3"
    assert box_caption(person(None)) == "person 0.90"


def test_a_gallery_written_while_running_applies_at_the_next_frame_and_a_corrupt_one_keeps_the_examples(tmp_path,
                                                                                                        caplog):
    """The gallery watched: grace's track (kept vector, not embedded again) is named once grace is taught, keeps her
    name when the file is overwritten with something that is not a gallery (one warning line), and is dropped once
    the file says that view is not a person: its votes start over from its latest vector."""
    path = tmp_path / "gallery.json"
    embedder = GALLERY.embedder
    watch = GalleryWatch(path, embedder, threshold=0.7, margin=0.1)
    verdicts = Verdicts(watch.matcher(watch.load()), watch)
    assert judged(verdicts, [person(4)], [GRACE], {0}).detections[0].attributes == {}
    Gallery(embedder, GALLERY.examples[:1]).save(path)
    assert judged(verdicts, [person(4)], [GRACE], set()).detections[0].attributes["name"] == "grace"
    path.write_text("{not json")
    assert judged(verdicts, [person(4)], [GRACE], set()).detections[0].attributes["name"] == "grace"
    warnings = [r.getMessage() for r in caplog.records if r.name == "app.teach.watch" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "not a gallery of taught examples" in warnings[0], warnings
    Gallery(embedder, (Example("not:person", "person", GRACE, False, "the same view"),)).save(path)
    assert judged(verdicts, [person(4)], [GRACE], set()).detections == [] and verdicts.taught_not == 1
