"""The Publisher interface: an output that receives every processed frame in the output lane."""

from __future__ import annotations

from abc import ABC, abstractmethod

from app.frame import Frame


class Publisher(ABC):
    @abstractmethod
    def publish(self, frame: Frame, result: dict) -> None:
        """Send one processed frame; `result` is its JSON shape. Must not block for long: drop and count instead."""

    def close(self) -> None:
        """Flush and release; called once when the run ends."""
