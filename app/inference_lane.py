"""The inference lane: one thread and one model runner serving 1..N cameras' pipelines.

One camera is a lane of one. Cameras that use one model on one Edge TPU share a lane: in each round it takes the
frame waiting at each camera (the newest, on a live camera) and infers it, then waits for the next frame of any of
them, so a camera with a fast source cannot starve the others (what Frigate's shared detector queue and Watsor's
balanced queue do). A camera whose frame raises is failed alone and the lane serves the others on. The lane's
thread starts when its first camera runs and ends when no camera is left on it; a camera rebuilt after a failure
joins again while others remain, and a lane that ended takes none (its model is loaded anew).
"""

from __future__ import annotations

import threading
from typing import Protocol

from app.frame import Frame
from app.model.runner import ModelRunner

#: how long a lane with nothing to do waits before looking again (a frame, or a camera's end, wakes it at once)
IDLE_WAIT_S = 0.05


class LaneEnded(RuntimeError):
    """A camera was built for a lane that had ended (no camera was left on it): it needs a lane built anew."""


class Served(Protocol):
    """What the lane asks of a camera's pipeline."""

    def next_frame(self) -> tuple[Frame | None, bool]: ...

    def infer(self, frame: Frame) -> None: ...

    def finish_inference(self) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


class InferenceLane:
    def __init__(self, runner: ModelRunner, name: str = "inference") -> None:
        self.runner = runner
        #: set at every frame handed over to any camera of the lane (and at each one's end), for the lane to wait on
        self.arrived = threading.Event()
        self.name = name
        self._active: list[Served] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.ended = False

    def join(self, pipeline: Served) -> bool:
        """Serve one more camera (from the next round, once `start`ed); False when the lane has ended (no camera
        was left on it). Cameras join when they are built, so none is left behind by a neighbour that ends early."""
        with self._lock:
            if self.ended:
                return False
            self._active.append(pipeline)
        self.arrived.set()
        return True

    def start(self) -> None:
        """Start the lane's thread, once: each camera calls it when it runs."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                active = list(self._active)
                self.ended = not active
            if self.ended:
                return
            self.arrived.clear()
            served = False
            for pipeline in active:
                served |= self._serve(pipeline)
            if not served:
                self.arrived.wait(IDLE_WAIT_S)

    def _serve(self, pipeline: Served) -> bool:
        """Infer the frame waiting at one camera, if any; a camera whose frames ended (or whose frame raised)
        leaves the lane. True when a frame was inferred."""
        served = False
        try:
            frame, ended = pipeline.next_frame()
            if frame is not None:
                pipeline.infer(frame)
                served = True
        except BaseException as exc:  # that camera's failure: it stops and raises it, the others go on
            pipeline.fail(exc)
            ended = True
        if ended:
            self._leave(pipeline)
        return served

    def _leave(self, pipeline: Served) -> None:
        with self._lock:
            self._active.remove(pipeline)
        try:
            pipeline.finish_inference()
        except BaseException as exc:
            pipeline.fail(exc)
