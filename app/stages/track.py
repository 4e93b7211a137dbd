"""Track: the `track` stage, after postprocess and filter. Gives each detection its object's `track_id` and zones,
and hands the objects' events (new, update, end) to the output lane through the StageContext.

The tracker (app/scene/tracker.py) lives as long as the run: restarting the stages after the Edge TPU falls back to the
CPU keeps every track. The camera's zones and lines are laid on the first frame's size, and again whenever the
size changes (a camera reopened at another size). `finish` ends every track when the run ends.
"""

from __future__ import annotations

from app.frame import Frame
from app.stages.base import Stage, StageContext
from app.scene.tracker import Tracker
from app.scene.zones import SceneLayout, captured_size


class Track(Stage):
    name = "track"

    def __init__(self, params) -> None:
        super().__init__(params)
        self.tracker = Tracker(params)
        self._ctx: StageContext | None = None
        self._seq = 0

    def start(self, ctx: StageContext) -> None:
        self._ctx = ctx

    def process(self, frame: Frame) -> Frame:
        assert self._ctx is not None, "started"
        camera = self._ctx.camera
        if (camera.zones or camera.lines) and (self.tracker.scene is None or self.tracker.scene.size != frame.size):
            self.tracker.rescene(SceneLayout.build(camera.zones, camera.lines, frame.size, captured_size(camera)))
        frame.detections, events = self.tracker.update(frame.detections, frame.t_capture, frame.seq)
        frame.scene = self.tracker.scene
        frame.zone_counts, frame.line_counts = self.tracker.zone_counts(), self.tracker.line_totals()
        self._seq = frame.seq
        self._ctx.object_events.extend(events)
        return frame

    def reconfigure(self, params, ctx: StageContext) -> None:
        """A reload: the tracks and their ids stay; the new parameters apply from the next frame, and the camera's
        zones and lines from now (laid out on the frame size the tracker knows, else on the next frame)."""
        self.params = self.tracker.params = params
        self._ctx = ctx
        if self.tracker.scene is not None:
            self.tracker.rescene(SceneLayout.build(ctx.camera.zones, ctx.camera.lines, self.tracker.scene.size,
                                                   captured_size(ctx.camera)))

    def finish(self) -> None:
        assert self._ctx is not None, "started"
        self._ctx.object_events.extend(self.tracker.finish(self._seq))
