"""The `privacy:` section of config.yaml: which labels are hidden in every image that leaves the device, and how.

Off by default (no labels). On, an image goes out only once its frame's mask (segmentation, or detection boxes) was
applied (`app.outputs.privacy`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.config.base import Strict


class PrivacyConfig(Strict):
    labels: list[str] = Field([], description="labels hidden in every image sent (MJPEG, /snapshot.jpg, snapshots, "
                              "the MQTT image); empty: privacy off")
    mode: Literal["fill", "blur"] = Field("fill", description="fill: solid black; blur: a strong blur")

    @property
    def enabled(self) -> bool:
        return bool(self.labels)
