"""The `clips:` section of config.yaml: event clips, the camera's own encoded video around each tracked object's life.

Owns the keys and the one rule that involves another section: clips and `privacy:` together are refused. A clip
is the camera's packets remuxed, never decoded, so nothing in it can be masked, and privacy fails closed
(DESIGN.md): a configuration that would send unmasked video is wrong, said in one line by `validate` and at start.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo

from app.config.base import Strict
from app.config.privacy import PrivacyConfig

#: clips take at most this much (a day at 2 Mbit/s is about 21 GB)
MAX_BYTES_LIMIT = 10 ** 13


class ClipsConfig(Strict):
    enabled: bool = Field(False, description="keep an MP4 clip of each tracked object's life")
    dir: str = Field("clips", description="clips go to DIR/<camera>/ (relative paths: to the config file)")
    pre_roll_s: float = Field(5.0, ge=0, le=60, description="video kept from before the object was first seen")
    post_roll_s: float = Field(5.0, ge=0, le=300, description="video kept after the object was last seen")
    labels: list[str] = Field([], description="the labels that make a clip; empty: every tracked object")
    zones: list[str] = Field([], description="only objects seen in one of these zones; empty: anywhere")
    max_clip_s: float = Field(300.0, ge=10, le=3600, description="a longer clip is cut at a keyframe and "
                              "goes on in the next")
    keep_days: float = Field(7.0, gt=0, le=3650, description="clips older than this are deleted")
    max_bytes: int = Field(2 * 10 ** 9, ge=10 ** 6, le=MAX_BYTES_LIMIT, description="each camera's clips "
                           "take at most this, the oldest deleted first")


def _refused_with_privacy(clips: ClipsConfig, info: ValidationInfo) -> ClipsConfig:
    """`clips` unless it is enabled while `privacy:` (validated before it) hides labels."""
    privacy = info.data.get("privacy")
    if clips.enabled and isinstance(privacy, PrivacyConfig) and privacy.enabled:
        raise ValueError("clips cannot be on with privacy: a clip is the camera's own video, not masked (privacy "
                         "fails closed): turn clips or privacy off")
    return clips


#: the section as config.yaml declares it, after `privacy:`, whose labels it is checked against
CheckedClipsConfig = Annotated[ClipsConfig, AfterValidator(_refused_with_privacy)]
