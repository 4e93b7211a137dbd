"""Two boards, one identity: seeing another client publish the topics of this instance.

The topics, the Home Assistant device and its availability are named by `{prefix}`, `camera.name` and the pipeline,
not by the board, so existing users keep their entities. Two boards that both keep the default camera name `cam0`
would then be one device, each one's availability overwriting the other's. Each instance therefore says who it is:
its client id (which has the host, `smartcam-<host>-<camera>-<pipeline>`) retained at `{base}/client`. `Claims`
reads that topic and says, once per other client id, when another client publishes the same instance: one whose
claim is retained while the instance's availability is retained `online` (found at connect: the other runs now),
or one that claims it live (it connected while this one runs). A claim retained beside `offline` is this board's
own earlier run under another host name or client id, and says nothing.
"""

from __future__ import annotations

from app.outputs.mqtt.topics import ONLINE, Topics


class Claims:
    """What the messages on `{base}/client` and `{base}/availability` say about who else publishes the instance."""

    def __init__(self, topics: Topics, client_id: str) -> None:
        self._topics, self._client_id = topics, client_id
        #: a retained claim of another client found at connect, not yet known to be live
        self._retained_other: str | None = None
        self._said: set[str] = set()

    def client(self, payload: bytes, retained: bool) -> str | None:
        """A message on `{base}/client`: the warning to log, if it shows another client publishing now."""
        other = payload.decode(errors="replace")
        if not other or other == self._client_id:
            return None
        if retained:
            self._retained_other = other
            return None
        return self._warning(other)

    def availability(self, payload: bytes, retained: bool) -> str | None:
        """A message on `{base}/availability`: a retained `online` makes a retained claim of another live."""
        other, self._retained_other = self._retained_other, None
        if retained and other is not None and payload == ONLINE.encode():
            return self._warning(other)
        return None

    def _warning(self, other: str) -> str | None:
        if other in self._said:
            return None
        self._said.add(other)
        topics = self._topics
        return (f"another client, {other}, publishes {topics.base} too (another board with camera.name "
                f"{topics.camera} and pipeline {topics.pipeline}?): both are one Home Assistant device and each "
                f"one's availability overwrites the other's; give each board its own camera.name, or its own "
                f"mqtt.topic_prefix")
