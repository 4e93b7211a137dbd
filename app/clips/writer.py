"""`ClipWriter`: one clip on disk, its packets remuxed (never decoded, never encoded) into an MP4, and beside it a
JPEG thumbnail and a JSON sidecar.

Owns the files of one clip and their atomicity: the MP4 is written under a temporary name in the same folder
(`.NAME.mp4.tmp`), with its index (moov) at the front (`movflags=+faststart`, so a browser plays it before it has
it all), fsynced and renamed; the thumbnail (the clip's first frame, decoded once) and the sidecar follow, each
written the same way, the sidecar last: a clip is listed (app/clips/retention.py) only once it is whole. Whatever
fails on the way (a full disk) removes what was begun and raises: no partial file is ever left visible.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import cv2

from app.clips.ring import EncodedPacket
from app.outputs.snapshots import temp_path, write_atomically

if TYPE_CHECKING:
    import av
    import av.container
    import av.video

VIDEO, THUMBNAIL, SIDECAR = ".mp4", ".jpg", ".json"
THUMBNAIL_QUALITY = 80


class ClipWriter:
    """Opened with the clip's path (without extension) and the stream's parameters (`template`, a stream whose
    codec parameters are copied); `write` each packet in decode order from a keyframe, then `finish`, or
    `abort` to leave nothing."""

    def __init__(self, base: Path, template: av.video.stream.VideoStream) -> None:
        import av

        self.video = base.with_suffix(VIDEO)
        self._temp = temp_path(self.video)
        time_base = template.time_base
        assert time_base is not None, "a stream from its container has a time base"
        self._time_base = time_base
        self._container: av.container.OutputContainer | None = av.open(
            str(self._temp), "w", format="mp4", options={"movflags": "+faststart"})
        self._stream = self._container.add_stream_from_template(template)
        self._first_dts: int | None = None
        self.bytes = 0

    def write(self, packet: EncodedPacket) -> None:
        """Append one packet, its timestamps moved so the clip's first decodes at 0."""
        import av

        assert self._container is not None, "finished"
        if self._first_dts is None:
            self._first_dts = packet.dts
        out = av.Packet(packet.data)
        out.pts, out.dts = packet.pts - self._first_dts, packet.dts - self._first_dts
        out.time_base = self._time_base
        out.is_keyframe = packet.keyframe
        out.stream = self._stream
        self._container.mux(out)
        self.bytes += len(packet.data)

    def finish(self, sidecar: dict) -> None:
        """Close the MP4 (its index moved to the front), make it visible, then its thumbnail and sidecar; on any
        failure remove them all and raise."""
        base = self.video.with_suffix("")
        try:
            self._close()
            with open(self._temp, "rb+") as file:
                os.fsync(file.fileno())
            os.replace(self._temp, self.video)
            write_atomically(base.with_suffix(THUMBNAIL), first_frame_jpeg(self.video))
            write_atomically(base.with_suffix(SIDECAR), json.dumps(sidecar, indent=1).encode())
        except BaseException:
            for path in (self._temp, self.video, base.with_suffix(THUMBNAIL)):
                path.unlink(missing_ok=True)
            raise

    def abort(self) -> None:
        """Leave nothing of the clip (a failed write): the temporary file removed, whatever closing it says."""
        try:
            self._close()
        except Exception:  # noqa: BLE001 - the clip is being thrown away; the failure was already reported
            pass
        finally:
            self._temp.unlink(missing_ok=True)

    def _close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.close()


def first_frame_jpeg(video: Path) -> bytes:
    """The first frame of `video`, decoded, as JPEG."""
    import av

    with av.open(str(video)) as container:
        frame = next(container.decode(video=0), None)
        if frame is None:
            raise ValueError(f"{video}: no frame of it decodes")
        image = frame.to_ndarray(format="bgr24")
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_QUALITY])
    if not ok:
        raise ValueError(f"{video}: its first frame does not encode as JPEG")
    return data.tobytes()
