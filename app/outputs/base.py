"""The Publisher interface, and `Output`: one processed frame as every publisher sees it.

`Output` computes what several outputs share once per frame and only on demand: the image as it may leave the
device (privacy-masked, `app.outputs.privacy`), the annotated image (drawn on a copy of it the first time an output
asks) and JPEG encodings (cached by size and quality). With privacy on, a frame without a mask raises
`PrivacyUnmasked` from `annotated` and `jpeg`: each publisher skips that image and counts a `privacy_unmasked` drop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import ClassVar

import cv2
import numpy as np

from app.config import OverlayParams, PublishParams, Settings
from app.scene.label_events import Event
from app.frame import BGR, Frame
from app.metrics import Stats
from app.model.kinds.base import DETECTIONS
from app.config.privacy import PrivacyConfig
from app.outputs.overlay import draw
from app.outputs.privacy import PRIVACY_UNMASKED, PrivacyUnmasked, masked_image
from app.scene.tracker import ObjectEvent


@dataclass
class PublishContext:
    """What publishers need to know about the run they publish."""

    settings: Settings
    stats: Stats
    publish: PublishParams
    #: a finite source (file, images): outboxes wait rather than drop, so every frame's result goes out
    lossless: bool = False
    #: what the run's model gives (its kind's `produces`): label counts mean something only with detections
    produces: str = DETECTIONS

    @property
    def camera(self) -> str:
        return self.settings.device.camera.name

    @property
    def pipeline(self) -> str:
        return self.settings.pipeline.name


@dataclass
class Output:
    frame: Frame
    result: dict
    events: list[Event]
    counts: dict[str, int]
    overlay: OverlayParams
    fps: float
    #: the tracked objects' events of this frame and of frames dropped before it (the `track` stage), in order
    objects: list[ObjectEvent] = field(default_factory=list)
    #: what is hidden in every image of this frame that leaves the device (config.yaml's `privacy:`)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    _masked: np.ndarray | None = field(default=None, repr=False)
    _annotated: np.ndarray | None = field(default=None, repr=False)
    _jpegs: dict[tuple[int, int, bool], bytes] = field(default_factory=dict, repr=False)

    def masked(self) -> np.ndarray:
        """The frame's image with the privacy mask applied (once); PrivacyUnmasked when the frame has no mask."""
        if self._masked is None:
            self._masked = masked_image(self.frame, self.privacy)
        return self._masked

    def annotated(self) -> np.ndarray:
        """The masked frame with boxes and banner drawn, in the frame's channel order (drawn once, on a copy)."""
        if self._annotated is None:
            self._annotated = draw(replace(self.frame, image=self.masked()), self.overlay, self.fps)
        return self._annotated

    def jpeg(self, width: int = 0, quality: int = 80, annotated: bool = True) -> bytes:
        """The frame as JPEG, scaled to `width` (0: as captured); encoded once per (width, quality, annotated), from
        the frame's own channel order (scaled first, so only the smaller image is converted, if any)."""
        key = (width, quality, annotated)
        if key not in self._jpegs:
            image = self.annotated() if annotated else self.masked()
            if width and width != image.shape[1]:
                height = round(image.shape[0] * width / image.shape[1])
                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            if self.frame.order != BGR:
                image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise ValueError("JPEG encoding failed")
            self._jpegs[key] = data.tobytes()
        return self._jpegs[key]

    def sendable_jpeg(self, stats: Stats, width: int = 0, quality: int = 80, annotated: bool = True) -> bytes | None:
        """`jpeg(...)` for a publisher to send, or None when privacy withholds this frame's images (counted as a
        `privacy_unmasked` drop in `stats`)."""
        try:
            return self.jpeg(width, quality, annotated)
        except PrivacyUnmasked:
            stats.drop(PRIVACY_UNMASKED)
            return None


def event_document(event: Event, out: Output, ctx: PublishContext) -> dict:
    """An event as every output sends it (MQTT, webhooks): what happened, where, and the frame's result."""
    return {"type": event.kind, "label": event.label, "count": event.count, "previous": event.previous,
            "camera": ctx.camera, "pipeline": ctx.pipeline, "result": out.result}


def object_document(event: ObjectEvent, ctx: PublishContext) -> dict:
    """A tracked object's event as every output sends it (MQTT, webhooks, the page); `seq`: its frame's."""
    return {**event.as_dict(), "camera": ctx.camera, "pipeline": ctx.pipeline, "seq": event.seq}


class Publisher(ABC):
    #: the config.yaml section it is built from (by `build_publishers`); None: one its caller made (the Python API's,
    #: the bench's, a test's), which a reload leaves alone
    section: ClassVar[str | None] = None

    def start(self, ctx: PublishContext) -> None:
        """Connect, listen, create folders; called once before the first frame."""

    @abstractmethod
    def publish(self, out: Output) -> None:
        """Take one processed frame. Must return quickly: a slow peer is fed from an outbox that drops, counting."""

    def finish(self, objects: list[ObjectEvent]) -> None:
        """The run's end, after its last frame and before `close`: `objects`, the events of the tracks it ended
        (`end`). Must return quickly, as `publish`. By default ignored (an output that sends no object events)."""

    def reconfigure(self, ctx: PublishContext) -> bool:
        """A reload, while running: take `ctx` (the files read again) and return True, or return False to be closed
        and replaced by a publisher built from them. The default: replaced, which costs a short-lived output
        (files, webhooks) nothing; one that holds a connection keeps it when its own section did not change."""
        return False

    def close(self, deadline: float) -> None:
        """Flush and release by `deadline` (monotonic; the run's one stop budget), then give up on what is left;
        called once when the run ends."""
