"""The capture lane of one camera: from its source to the latest-frame slot the inference lane takes from.

It owns the source (a camera or stream wrapped in `Reconnecting`, which waits for it through every failure; so
is a file or folder not there yet, a disk not mounted), the motion gate that decides whether a frame is inferred
at all, the stages' `prepare` (work done on a core `invoke()` leaves idle), and the slot: on a live source the
newest frame wins and a replaced one is counted `stale`; a file is read only as fast as it is processed. With
clips on, it makes the camera's ring of encoded video (app/clips/ring.py): a source that demuxes H.264 or H.265 (a
file, a stream) fills it with its own packets; the frames of any other are encoded into it here, every frame read,
before the motion gate (app/clips/encoder.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from app.clips.encoder import RingEncoder
from app.clips.ring import EVENT_DELAY_S, PacketRing
from app.config import CameraConfig, Settings
from app.frame import ARRIVAL, Frame
from app.handoff import Handoff
from app.metrics import Stats
from app.scene.motion import MotionGate
from app.scene.zones import captured_size
from app.sources import build_source
from app.sources.base import EndOfStream, Source
from app.sources.mjpeg import decode_scale
from app.sources.reconnect import Reconnecting
from app.stages.base import Stage
from app.stages.track import Track

log = logging.getLogger(__name__)


class CaptureLane:
    def __init__(self, settings: Settings, source: Source | None, input_size: tuple[int, int], stages: list[Stage],
                 stats: Stats, stop: threading.Event, on_frame: Callable[[], None]) -> None:
        """`source`: the camera's, built from its settings when None (an MJPEG camera decoding at the smallest
        size the model of `input_size` and the outputs allow); `stop`: set when the camera stops; `on_frame`: called
        at each frame handed over (the inference lane waits on it)."""
        self.camera = settings.device.camera
        self.stats = stats
        self.stages = stages
        self._stop = stop
        self._decode_errors = 0
        # a camera that can scale for free (picamera2's lores stream) delivers the stretched model input too
        stretch = settings.pipeline.preprocess.resize == "stretch"
        scale = decode_scale(settings.device, input_size)
        source = source or build_source(self.camera.model_copy(update={"decode_scale": scale}),
                                        input_size if stretch else None)
        #: the encoded video clips are cut from, when clips are on (None otherwise), and what encodes the frames
        #: of a source that does not fill it itself
        self.ring = self._clip_ring(settings, source)
        self._encoder = None if self.ring is None else RingEncoder(self.ring, self.camera.fps, self.camera.name)
        self._clip_source = source
        self.source = (Reconnecting(source, self.camera.reconnect, stop, lambda: stats.drop("source_error"))
                       if source.reconnects else source)
        if isinstance(self.source, Reconnecting):
            stats.health["source"] = self.source.health.document
        self.slot: Handoff[Frame] = Handoff(1, not self.source.live, lambda: stats.drop("stale"), on_frame)
        self.gate = self._motion_gate()
        #: a reload's camera settings whose motion gate differs, applied before the next frame is read
        self._reload: CameraConfig | None = None
        #: the source did not open at `open()` and is waited for: said opened at its first frame
        self._waiting = False

    def _clip_ring(self, settings: Settings, source: Source) -> PacketRing | None:
        """The camera's ring, given to `source` (which fills it when it demuxes H.264), when clips are on."""
        clips = settings.device.clips
        if not clips.enabled:
            return None
        source.ring = PacketRing(clips.pre_roll_s + EVENT_DELAY_S,
                                 on_drop=lambda count: self.stats.drop("clip_ring_full", count))
        return source.ring

    def _motion_gate(self) -> MotionGate | None:
        """The gate for `camera.motion` (`auto`: on for a live source) and `camera.detect_fps`, if either is on."""
        camera = self.camera
        enabled = self.source.live if camera.motion.enabled == "auto" else camera.motion.enabled
        self.stats.reports.pop("motion", None)
        if not enabled and not camera.detect_fps:
            return None
        tracker = next((stage.tracker for stage in self.stages if isinstance(stage, Track)), None)
        gate = MotionGate(camera.motion, enabled, camera.detect_fps, lambda: tracker is not None and tracker.active,
                          captured_size(camera))
        self.stats.reports["motion"] = gate.document
        log.info("%s: motion gating %s%s", camera.name, "on" if enabled else "off",
                 f", at most {camera.detect_fps:g} inferred frames a second" if camera.detect_fps else "")
        return gate

    def reconfigure(self, camera: CameraConfig) -> None:
        """A reload: the camera's new motion gate settings (if they changed) apply from the next frame on."""
        if (camera.motion, camera.detect_fps) != (self.camera.motion, self.camera.detect_fps):
            self._reload = camera

    def open(self) -> None:
        """Open the source (a live one waits for its camera inside), and say so: opened, or waited for (said
        opened at its first frame)."""
        self.source.open()
        self.stats.info["source_description"] = self.source.description
        self._waiting = isinstance(self.source, Reconnecting) and self.source.health.down
        if self._waiting:
            log.info("%s: source %s did not open: waiting for it", self.camera.name, self.source.description)
        else:
            self._say_opened()

    def _say_opened(self) -> None:
        self._waiting = False
        log.info("%s: source %s opened (%s)", self.camera.name, self.source.description,
                 "live: newest frame wins" if self.source.live else "every frame processed")

    def run(self) -> None:
        """Read, gate, prepare and hand over frames until the source ends or the camera stops."""
        seq = 0
        try:
            while not self._stop.is_set():
                if self._reload is not None:
                    self.camera, self._reload = self._reload, None
                    self.gate = self._motion_gate()
                captured = self.source.read()
                if self._waiting:
                    self._say_opened()
                seq += 1
                self.stats.captured_frame()
                self._count_decode_errors()
                stamped = captured.t_capture
                frame = Frame(captured.image, seq, self.camera.name, captured.order,
                              t_capture=time.monotonic() if stamped is None else stamped,
                              stamp=ARRIVAL if stamped is None else captured.stamp, lores=captured.lores)
                if self._encoder is not None and not self._clip_source.fills_ring:
                    self._encoder.encode(captured.image, captured.order, frame.t_capture)
                if self.gate is not None:
                    skipped, frame.motion = self.gate.admit(captured.image, frame.t_capture)
                    if skipped:  # never handed over: it costs its decode and the motion check only
                        self.stats.skipped(skipped)
                        continue
                for stage in self.stages:  # e.g. the resize, on a core invoke() leaves idle
                    stage.prepare(frame)
                if not self.slot.put(frame):
                    return
        except EndOfStream:
            self._count_decode_errors()
            if not self._stop.is_set():
                log.info("source %s ended", self.source.description)
        finally:
            self.slot.close()

    def _count_decode_errors(self) -> None:
        """The frames the source skipped since last asked, as `decode_error` drops."""
        new = self.source.decode_errors - self._decode_errors
        if new:
            self.stats.drop("decode_error", new)
            self._decode_errors += new
