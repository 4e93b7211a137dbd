"""Object events travel on their frame through the output lane: those of a frame the full queue drops go out with
the next frame published, and the run's end is one `finish` call per publisher, after the last frame, with no frame
handed over twice."""

from __future__ import annotations

import numpy as np

from app.config import load_settings
from app.frame import Frame
from app.metrics import Stats
from app.output_lane import OUTPUT_QUEUE_SIZE, OutputLane
from app.outputs.base import Output, Publisher
from app.scene.tracker import END, NEW, ObjectEvent
from conftest import PET


class Recorder(Publisher):
    """What reaches a publisher, in order: ("frame", seq, its object events' seqs) or ("finish", seqs)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def publish(self, out: Output) -> None:
        self.calls.append(("frame", out.frame.seq, [(e.type, e.seq) for e in out.objects]))

    def finish(self, objects: list[ObjectEvent]) -> None:
        self.calls.append(("finish", [(e.type, e.seq) for e in objects]))


def event(kind: str, seq: int) -> ObjectEvent:
    return ObjectEvent(kind, 1, "cat", 0.9, (0, 0, 2, 2), (), 0.0, None, False, (), seq)


def test_a_dropped_frame_hands_its_object_events_on_and_the_end_is_one_finish_call():
    recorder = Recorder()
    lane = OutputLane(load_settings("detect", None, PET), [recorder], Stats(), lossless=False)
    lane.start()
    last = OUTPUT_QUEUE_SIZE + 2  # the first two frames are dropped: the lane runs only once all are handed over
    for seq in range(1, last + 1):
        lane.put(Frame(np.zeros((4, 4, 3), np.uint8), seq, "test",
                       objects=[event(NEW, seq)] if seq in (1, 2, 5) else []))
    lane.end([event(END, last)])
    lane.run()
    frames = [call for call in recorder.calls if call[0] == "frame"]
    assert [seq for _, seq, _ in frames] == list(range(3, last + 1))  # each frame once: no replay
    assert frames[0] == ("frame", 3, [(NEW, 1), (NEW, 2)]) and frames[2] == ("frame", 5, [(NEW, 5)])
    assert sum(len(objects) for _, _, objects in frames) == 3
    assert recorder.calls[-1] == ("finish", [(END, last)]) and len(recorder.calls) == len(frames) + 1
