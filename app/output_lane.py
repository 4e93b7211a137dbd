"""The output lane of one camera: from the bounded queue of processed frames to the publishers.

It owns the queue the inference lane fills (`put`), the label events computed once per frame for every publisher
(`LabelEvents`), and the publishers' start, end and close, which take the one stop budget. The tracked objects'
events travel on their frame (`Frame.objects`); those of a frame the full queue drops go out with the next frame
published, so a frame may be lost but an object's event never is. The end of the run (`end`) hands the events of
the tracks it closed to every publisher (`Publisher.finish`) after the last frame. The lane itself does no I/O:
each publisher has its outbox. Publishers never block it. The clip publisher is handed the camera's ring of encoded
video before it starts, and plans each frame's object events into clips before any publisher gets them (`_planned`:
the events of an object in a clip carry the clip's URL, whichever output sends them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from app.config import Settings
from app.frame import Frame
from app.handoff import Handoff
from app.metrics import Stats
from app.model.kinds.base import DETECTIONS
from app.clips.ring import PacketRing
from app.outputs.base import Output, PublishContext, Publisher
from app.outputs.clips import ClipPublisher
from app.scene.label_events import LabelEvents
from app.scene.tracker import ObjectEvent

log = logging.getLogger(__name__)

OUTPUT_QUEUE_SIZE = 8
#: how long publishers may take to flush after a run that ended by itself (source ended, --max-frames)
FLUSH_S = 5.0
#: how long a publisher a reload replaces may take to flush
RELOAD_CLOSE_S = 2.0


class OutputLane:
    def __init__(self, settings: Settings, publishers: list[Publisher], stats: Stats, lossless: bool,
                 ring: PacketRing | None = None, produces: str = DETECTIONS) -> None:
        """`lossless`: the inference lane waits for room rather than dropping the oldest frame (files, images);
        `ring`: the camera's encoded video, for clips (None: clips off, or a source that gives none); `produces`:
        what the run's model gives (its kind's), which publishers are told."""
        self.settings = settings
        self.produces = produces
        self.ring = ring
        self.publishers = publishers
        self.stats = stats
        self.results: Handoff[Frame] = Handoff(OUTPUT_QUEUE_SIZE, lossless, lambda: stats.drop("output_full"))
        #: the object events of the frames handed over and not yet published, by frame, oldest first (not the
        #: frames: a dropped frame's image is not kept for its events)
        self._carrying: deque[tuple[int, list[ObjectEvent]]] = deque()
        self._carrying_lock = threading.Lock()
        #: the events of the tracks the run's end closed (`end`)
        self._closing: list[ObjectEvent] = []
        self._lossless = lossless
        #: a reload's settings and the publishers built from them, applied before the next frame is published
        self._reload: tuple[Settings, list[Publisher]] | None = None

    def start(self) -> None:
        """Start every publisher; when one fails, close those started and raise."""
        ctx = PublishContext(self.settings, self.stats, self.settings.pipeline.publish, self._lossless, self.produces)
        started: list[Publisher] = []
        try:
            for publisher in self.publishers:
                self._start(publisher, ctx)
                started.append(publisher)
        except BaseException:
            close_publishers(started, time.monotonic() + FLUSH_S)
            raise

    def run(self) -> None:
        """Publish each processed frame until the queue is closed and drained."""
        labels = LabelEvents(*_label_settings(self.settings))
        while (frame := self.results.get()) is not None:
            if self._reload is not None:
                labels = labels.reconfigured(*_label_settings(self._reload[0]))
                self._apply_reload(*self._reload)
            pipeline = self.settings.pipeline
            events = labels.update(frame)
            objects = self._planned(self._objects_until(frame.seq), frame.t_capture)
            self._publish(Output(frame, frame.result(pipeline.name), events, dict(labels.counts), pipeline.overlay,
                                 self.stats.recent_fps(), objects, self.settings.device.privacy))
        closing = self._planned([*self._objects_until(None), *self._closing], time.monotonic())
        for publisher in self.publishers:
            publisher.finish(closing)

    def put(self, frame: Frame) -> None:
        """Hand a processed frame over (the inference lane); a full queue drops its oldest (live sources)."""
        if frame.objects:
            with self._carrying_lock:
                self._carrying.append((frame.seq, frame.objects))
        self.results.put(frame)

    def end(self, closing: list[ObjectEvent]) -> None:
        """No more frames (the inference lane): `closing`, the events of the tracks the run's end closed, go to the
        publishers after the last frame."""
        self._closing = closing
        self.results.close()

    def reconfigure(self, settings: Settings, publishers: list[Publisher]) -> None:
        """A reload: `settings` and the publishers built from them (not started) apply before the next frame."""
        self._reload = (settings, publishers)

    def _apply_reload(self, settings: Settings, fresh: list[Publisher]) -> None:
        """Each publisher built from the files takes the new settings, or is replaced by its fresh counterpart
        (closed, or only closed when its output was turned off); fresh ones for outputs turned on start."""
        self._reload = None
        self.settings = settings
        ctx = PublishContext(settings, self.stats, settings.pipeline.publish, self._lossless, self.produces)
        by_section = {publisher.section: publisher for publisher in fresh if publisher.section}
        kept: list[Publisher] = []
        for publisher in self.publishers:
            new = by_section.pop(publisher.section, None) if publisher.section else None
            if publisher.section is None or (new is not None and publisher.reconfigure(ctx)):
                kept.append(publisher)
                continue
            close_publishers([publisher], time.monotonic() + RELOAD_CLOSE_S)
            if new is not None:
                self._start(new, ctx)
                kept.append(new)
        for new in by_section.values():
            self._start(new, ctx)
            kept.append(new)
        self.publishers = kept

    def _start(self, publisher: Publisher, ctx: PublishContext) -> None:
        """Start `publisher`, the clip publisher with the camera's ring."""
        if isinstance(publisher, ClipPublisher):
            publisher.ring = self.ring
        publisher.start(ctx)

    def _planned(self, objects: list[ObjectEvent], now: float) -> list[ObjectEvent]:
        """A frame's object events (`now`: its stamp), planned into clips by the clip publisher, when there is one
        (every frame, events or not: the planner follows the ring)."""
        for publisher in self.publishers:
            if isinstance(publisher, ClipPublisher):
                objects = publisher.plan(objects, now)
        return objects

    def close(self, deadline: float) -> None:
        """Close every publisher, flushing until `deadline`."""
        close_publishers(self.publishers, deadline)

    def _objects_until(self, seq: int | None) -> list[ObjectEvent]:
        """The object events of the frames up to `seq`, the one published and those the full queue dropped before
        it (every frame's left, for None)."""
        taken = []
        with self._carrying_lock:
            while self._carrying and (seq is None or self._carrying[0][0] <= seq):
                taken += self._carrying.popleft()[1]
        return taken

    def _publish(self, out: Output) -> None:
        for publisher in self.publishers:
            publisher.publish(out)
        self.stats.published(out.frame.t_capture)


def _label_settings(settings: Settings) -> tuple[list[str] | None, float, int, int, bool]:
    """What `LabelEvents` is built from: the pipeline's publish settings, and whether only tracked objects count."""
    publish = settings.pipeline.publish
    return (publish.labels, publish.min_score, publish.appear_frames, publish.clear_frames,
            settings.pipeline.track is not None)


def close_publishers(publishers: list[Publisher], deadline: float) -> None:
    """Close every publisher at once, each flushing in its own thread, and wait for them until `deadline`."""
    closing = [(p, threading.Thread(target=p.close, args=(deadline,), name=f"close-{type(p).__name__}",
                                    daemon=True)) for p in publishers]
    for _, thread in closing:
        thread.start()
    for publisher, thread in closing:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("%s did not finish flushing in time; what it still held is lost", type(publisher).__name__)
