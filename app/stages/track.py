"""Track: the `track` stage, after postprocess and filter. Gives each detection its object's `track_id` and zones,
and puts the objects' events of the frame (new, update, end) on it (`Frame.objects`), for the output lane.

The scene (app/scene/scene.py: the tracker and its zone and line monitors) lives as long as the run: restarting the
stages after the Edge TPU falls back to the CPU keeps every track. The camera's zones and lines are laid on the
first frame's size, and again whenever the size changes (a camera reopened at another size). `finish` ends every
track when the run ends and returns their events.
"""

from __future__ import annotations

from app.frame import Frame
from app.scene.scene import Scene
from app.scene.tracker import ObjectEvent, Tracker
from app.scene.zones import SceneLayout, captured_size
from app.stages.base import Stage, StageContext


class Track(Stage):
    name = "track"

    def __init__(self, params) -> None:
        super().__init__(params)
        self.tracker = Tracker(params)
        self.scene = Scene(self.tracker)
        self._ctx: StageContext | None = None
        self._seq = 0

    def start(self, ctx: StageContext) -> None:
        self._ctx = ctx

    def process(self, frame: Frame) -> Frame:
        assert self._ctx is not None, "started"
        camera = self._ctx.camera
        layout = self.scene.layout
        if (camera.zones or camera.lines) and (layout is None or layout.size != frame.size):
            self.scene.relayout(SceneLayout.build(camera.zones, camera.lines, frame.size, captured_size(camera)))
        frame.detections, frame.objects = self.scene.update(frame.detections, frame.t_capture, frame.seq)
        frame.scene = self.scene.layout
        frame.zone_counts = self.scene.zones.counts()
        frame.line_counts = {name: dict(counts) for name, counts in self.scene.lines.counts.items()}
        self._seq = frame.seq
        return frame

    def reconfigure(self, params, ctx: StageContext) -> None:
        """A reload: the tracks and their ids stay; the new parameters apply from the next frame, and the camera's
        zones and lines from now (laid out on the frame size the scene knows, else on the next frame)."""
        self.params = self.tracker.params = params
        self._ctx = ctx
        if self.scene.layout is not None:
            self.scene.relayout(SceneLayout.build(ctx.camera.zones, ctx.camera.lines, self.scene.layout.size,
                                                  captured_size(ctx.camera)))

    def finish(self) -> list[ObjectEvent]:
        """The run ends: every track ends; their events."""
        return self.scene.finish(self._seq)
