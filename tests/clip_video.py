"""Test helpers for event clips and the video they are made of (the tests of clips, their serving, raw sources'
encoder and PyAV streams): a camera's H.264 file made with PyAV, in which a cat is seen for a while, the settings of
a run that makes clips of it, a camera's ring fed from such a file as its source feeds it, a file's packets and
decoded frames, and a tracked cat's object event."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from app.clips.ring import PacketRing
from app.scene.tracker import ObjectEvent
from app.config import Settings, load_settings
from conftest import CAT_BREEDS, IMAGES, imread, pet_pipeline

SIZE, FPS, GOP = (320, 240), 10, 20  # a keyframe every 2 s
GOP_S = GOP / FPS
#: the live file is presented this many times faster than its frame rate (stamps follow the pacer; clips the pts)
SPEED = 5.0
#: the clips' pre- and post-roll: the post-roll is longer than the tracker takes to end a track (max_lost frames),
#: so the clip's end is the post-roll's doing
PRE_ROLL_S, POST_ROLL_S = 4, 8


def make_h264(path: Path, seconds: float, cat_from: float, cat_to: float) -> Path:
    """An H.264 MP4 (B-frames, a keyframe every GOP frames): a grey picture with a bar that moves every frame (so no
    two frames' packets are alike) and cat.bmp at the top left from `cat_from` to `cat_to` seconds."""
    width, height = SIZE
    cat = cv2.resize(imread(IMAGES / "cat.bmp"), (240, 160))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0", "bf": "2",
                          "preset": "veryfast"}
        for i in range(round(seconds * FPS)):
            image = np.full((height, width, 3), 120, np.uint8)
            image[height - 20:, (i * 3) % (width - 10):(i * 3) % (width - 10) + 10] = 255
            if cat_from <= i / FPS < cat_to:
                image[10:170, 10:250] = cat
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode())
    return path


def clip_settings(tmp_path: Path, source: Path | str, *overrides: str) -> Settings:
    """The pipeline `cats` (the pet SSD, tracking) on `source`, with clips of cats into tmp_path/clips."""
    pipeline = pet_pipeline(tmp_path, "cats", track={}, publish={"labels": sorted(CAT_BREEDS)})
    return load_settings(str(pipeline), None, [
        f"camera.source={source}", "clips.enabled=true", f"clips.dir={tmp_path / 'clips'}",
        f"clips.pre_roll_s={PRE_ROLL_S}", f"clips.post_roll_s={POST_ROLL_S}",
        f"clips.labels=[{', '.join(sorted(CAT_BREEDS))}]", *overrides])


class FedRing:
    """A camera's ring fed from a file as its source feeds it: packets in decode order, and each frame presented
    (stamped with its stream time) once the packets it needs are in."""

    def __init__(self, path: Path, keep_s: float, max_bytes: int = 32 << 20) -> None:
        self.drops: list[int] = []
        self.ring = PacketRing(keep_s, max_bytes, self.drops.append)
        self._container = av.open(str(path))
        stream = self._container.streams.video[0]
        self.ring.restart(stream)
        self.stream = stream
        self._packets = [p for p in self._container.demux(stream) if p.size]
        self._times = [(p.pts or 0, p.dts or 0) for p in self._packets]
        self._fed = 0
        self._presented: list[int] = []

    def feed(self, until_s: float) -> None:
        """Every packet whose dts is at most `until_s`, and the frames whose pts is at most that."""
        while self._fed < len(self._packets) and self.ring.seconds(self._times[self._fed][1]) <= until_s:
            self.ring.add(self._packets[self._fed])
            self._fed += 1
        due = sorted(pts for pts, _ in self._times[:self._fed] if self.ring.seconds(pts) <= until_s)
        for pts in due[len(self._presented):]:
            self.ring.presented(pts, self.ring.seconds(pts))
            self._presented.append(pts)


def packets_of(path: Path) -> list[tuple[bytes, int, bool, float]]:
    """Every video packet of `path`: (bytes, pts, keyframe, pts in seconds), in decode order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        time_base = stream.time_base
        return [(bytes(p), p.pts, p.is_keyframe, float(p.pts * time_base)) for p in container.demux(stream)
                if p.size]


def decoded_frames(video: Path) -> list[np.ndarray]:
    with av.open(str(video)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def cat_event(kind: str, track_id: int, start: float, end: float | None = None) -> ObjectEvent:
    return ObjectEvent(kind, track_id, "Bengal", 0.9, (0, 0, 10, 10), (), start, end, False)
