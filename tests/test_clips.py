"""Event clips: a 60 s H.264 camera (a file made here with PyAV, paced as live) in which a cat is seen from 20 s to
35 s gives one clip, of the camera's own packets, from the pre-roll before to the post-roll after; the ring of
packets behind it; retention within max_bytes, oldest first; what a crash left, cleaned at start; a full disk
that leaves no partial clip while the run goes on; clips refused with privacy on."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.clips import writer as writer_module
from app.clips.recorder import Recorder
from app.clips.retention import ClipFolder
from app.clips.ring import PacketRing
from app.config.clips import ClipsConfig
from app.errors import ConfigError
from app.metrics import Stats
from app.outputs import build_publishers
from app.outputs.base import PublishContext
from app.outputs import clips as clips_module
from app.outputs.clips import ClipPublisher
from app.pipeline import Pipeline
from app.scene.tracker import END, NEW, ObjectEvent
from app.sources import pacer, video_file
from clip_video import (FPS, GOP_S, POST_ROLL_S, PRE_ROLL_S, SIZE, SPEED, FedRing, cat_event, clip_settings,
                        make_h264, packets_of)
from conftest import CAT_BREEDS, PROJECT, Collector, imread, pet_pipeline, wait_for

@pytest.mark.parametrize("realtime", [True, False], ids=["paced as live", "read as fast as processed"])
def test_a_cat_seen_from_20_to_35_s_gives_one_clip_of_the_cameras_own_packets(tmp_path, monkeypatch, realtime):
    """Paced as live (SPEED times faster: the clip follows the stream's pts, which the pace does not change), and
    read as fast as the pipeline processes it, every frame: the same clip."""
    source = make_h264(tmp_path / "camera.mp4", 60, 20, 35)
    settings = clip_settings(tmp_path, source, f"camera.realtime={str(realtime).lower()}")
    monkeypatch.setattr(video_file, "Pacer", lambda fps: pacer.Pacer(fps * SPEED))
    seen = Collector()
    Pipeline(settings, [*build_publishers(settings), seen]).run()

    cat_times = [(result["seq"] - 1) / FPS for result in seen.results
                 if any(d["label"] in CAT_BREEDS for d in result["detections"])]
    assert cat_times and 20 <= cat_times[0] < 21 and 34 <= cat_times[-1] < 35
    camera_name = settings.device.camera.name
    folder = tmp_path / "clips" / camera_name
    sidecars = sorted(folder.glob("*.json"))
    assert len(sidecars) == 1, sorted((tmp_path / "clips").rglob("*"))
    sidecar = json.loads(sidecars[0].read_text())
    video = folder / sidecar["video"]
    clip = [data for data, *_ in packets_of(video)]
    camera = packets_of(source)
    first = [data for data, *_ in camera].index(clip[0])
    assert [data for data, *_ in camera[first:first + len(clip)]] == clip  # the camera's own bytes, in order
    assert camera[first][2]  # from a keyframe
    start, end = camera[first][3], max(seconds for *_, seconds in camera[first:first + len(clip)])
    assert cat_times[0] - PRE_ROLL_S - GOP_S <= start <= cat_times[0] - PRE_ROLL_S
    assert end >= cat_times[-1] + POST_ROLL_S
    data = video.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # the index at the front
    assert set(sidecar["labels"]) <= CAT_BREEDS and sidecar["track_ids"] and sidecar["camera"] == camera_name
    cat_stamps = [result["stamp"]["monotonic_ns"] / 1e9 for result in seen.results
                  if any(d["label"] in CAT_BREEDS for d in result["detections"])]
    assert sidecar["start_stamp"] < cat_stamps[0] < cat_stamps[-1] < sidecar["end_stamp"]  # the frames' clock
    assert imread(folder / sidecar["thumbnail"]).shape[:2] == SIZE[::-1]


def held(ring: PacketRing) -> list[tuple[float, bool]]:
    """(pts in seconds, keyframe) of every packet the ring holds."""
    return [(ring.seconds(packet.pts), packet.keyframe) for _, packet in ring.after(0)]


def test_the_ring_begins_at_a_keyframe_covers_its_time_and_drops_counted_oldest_first_over_its_bytes(tmp_path):
    source = make_h264(tmp_path / "camera.mp4", 20, 5, 10)
    camera = FedRing(source, keep_s=5)
    camera.feed(15)
    kept = held(camera.ring)
    assert kept[0][1] and 15 - 5 - GOP_S <= kept[0][0] <= 15 - 5  # from the keyframe before 10 s
    assert camera.drops == []  # what time let go is no drop
    everything = FedRing(source, keep_s=100)
    everything.feed(15)
    small = FedRing(source, keep_s=100, max_bytes=everything.ring.held_bytes // 2)
    small.feed(15)
    kept_all, kept_small = held(everything.ring), held(small.ring)
    assert kept_small[0][1] and kept_small == kept_all[-len(kept_small):]  # the oldest went, from a keyframe on
    assert small.ring.held_bytes <= everything.ring.held_bytes // 2
    assert sum(small.drops) == len(kept_all) - len(kept_small)  # each packet dropped over the bound counted


def visible(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_a_full_disk_leaves_no_partial_clip_and_the_next_clip_is_written(tmp_path):
    camera = FedRing(make_h264(tmp_path / "camera.mp4", 30, 99, 99), keep_s=9)
    folder = tmp_path / "clips"
    folder.mkdir()
    full = [True]
    failures: list[Exception] = []
    written: list[Path] = []

    class FullDisk(writer_module.ClipWriter):
        def write(self, packet):
            if full[0] and self.bytes > 2000:
                raise OSError(errno.ENOSPC, "No space left on device")
            super().write(packet)

    recorder = Recorder(ClipsConfig(enabled=True, pre_roll_s=2, post_roll_s=1), camera.ring, folder, "cam",
                        written.append, lambda what, exc: failures.append(exc), FullDisk)
    for track_id, (start, end) in enumerate([(5, 7), (17, 19)], 1):
        camera.feed(start + 1)
        recorder.take([cat_event(NEW, track_id, start)], start + 1)
        recorder.pump()
        camera.feed(end + 1)
        recorder.take([cat_event(END, track_id, start, end)], end + 1)
        camera.feed(end + 3)
        recorder.pump()
        if track_id == 1:
            assert [getattr(exc, "errno", None) for exc in failures] == [errno.ENOSPC] and written == []
            assert visible(folder) == []  # nothing of it is left, not even its temporary file
            full[0] = False
    assert len(failures) == 1 and len(written) == 1
    stem = written[0].stem
    assert visible(folder) == [f"{stem}.jpg", f"{stem}.json", f"{stem}.mp4"]


def test_a_full_disk_in_a_run_pauses_clips_counted_and_the_run_goes_on(tmp_path, monkeypatch):
    def no_space(self, packet):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module.ClipWriter, "write", no_space)
    settings = clip_settings(tmp_path, make_h264(tmp_path / "camera.mp4", 12, 4, 7))
    stats = Pipeline(settings, build_publishers(settings)).run()
    assert stats.processed == 12 * FPS  # every frame went through
    assert stats.drop_counts().get("clip_disk_full") == 1
    assert visible(tmp_path / "clips" / settings.device.camera.name) == []


def stored_clip(folder: Path, name: str, size: int, end_ts: float) -> None:
    (folder / f"{name}.mp4").write_bytes(b"v" * size)
    (folder / f"{name}.jpg").write_bytes(b"j")
    (folder / f"{name}.json").write_text(json.dumps({"end_ts": end_ts}))


def test_retention_deletes_the_oldest_first_past_max_bytes_and_past_keep_days(tmp_path):
    folder = ClipFolder(tmp_path)
    now = 1_800_000_000.0
    names = [f"2026120{day}-120000-000Z_cam" for day in range(1, 6)]
    for name in names:
        stored_clip(tmp_path, name, 1000, now)
    (tmp_path / "notes.txt").write_text("not a clip")
    assert folder.prune(keep_days=7, max_bytes=3500, now=now) == names[:2]
    assert [clip.name for clip in folder.index()] == names[2:]
    stored_clip(tmp_path, names[0], 10, now - 8 * 86400)  # over keep_days, however small
    assert folder.prune(keep_days=7, max_bytes=10 ** 6, now=now) == names[:1]
    assert folder.prune(keep_days=7, max_bytes=1, now=now) == names[2:4]  # the newest always stays
    assert visible(tmp_path) == [f"{names[4]}.jpg", f"{names[4]}.json", f"{names[4]}.mp4", "notes.txt"]


def test_what_a_crash_left_is_cleaned_at_start(tmp_path):
    settings = clip_settings(tmp_path, tmp_path / "camera.mp4")
    folder = tmp_path / "clips" / settings.device.camera.name
    folder.mkdir(parents=True)
    stored_clip(folder, "20261201-120000-000Z_cam0", 100, 0)
    (folder / ".20261202-120000-000Z_cam0.mp4.tmp").write_bytes(b"half")  # cut mid-write
    (folder / "20261203-120000-000Z_cam0.mp4").write_bytes(b"whole, no sidecar")  # cut before its sidecar
    (folder / ".other.tmp").write_bytes(b"not ours")
    publisher = ClipPublisher(settings.device.clips)
    publisher.ring = PacketRing(1)
    publisher.start(PublishContext(settings, Stats(), settings.pipeline.publish))
    publisher.close(0)
    assert visible(folder) == [".other.tmp", "20261201-120000-000Z_cam0.jpg", "20261201-120000-000Z_cam0.json",
                               "20261201-120000-000Z_cam0.mp4"]


def test_clips_with_privacy_on_are_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError) as refused:
        clip_settings(tmp_path, tmp_path / "camera.mp4", "privacy.labels=[person]")
    assert "clips cannot be on with privacy" in str(refused.value) and len(str(refused.value).splitlines()) == 1


def recorded(tmp_path: Path, lives: list[tuple[int, str, float, float]], reopen_at: float | None = None,
             seen_in: dict[int, tuple[str, ...]] | None = None, **config) -> list[dict]:
    """The sidecars of the clips a Recorder makes from a 60 s file for objects (track id, label, first seen, last
    seen; in the zones `seen_in` gives by track id), each event taken a second after its moment, the ring fed as
    time goes; at `reopen_at` the source reopens (the ring restarts)."""
    camera = FedRing(make_h264(tmp_path / "camera.mp4", 60, 99, 99), keep_s=9)
    folder = tmp_path / "clips"
    folder.mkdir()
    written: list[Path] = []
    recorder = Recorder(ClipsConfig(enabled=True, pre_roll_s=2, post_roll_s=2, **config), camera.ring, folder,
                        "cam", written.append, lambda what, exc: pytest.fail(f"{what}: {exc}"))
    moments = {round(start + 1, 1): (NEW, i) for i, (_, _, start, _) in enumerate(lives)}
    moments.update({round(end + 1, 1): (END, i) for i, (_, _, _, end) in enumerate(lives)})
    for frame in range(60 * FPS):  # time goes on frame by frame
        now = frame / FPS
        if reopen_at is not None and frame == round(reopen_at * FPS):
            camera.ring.restart(camera.stream)
        camera.feed(now)
        if now in moments:
            kind, i = moments[now]
            track_id, label, start, end = lives[i]
            zones = (seen_in or {}).get(track_id, ())
            recorder.take([ObjectEvent(kind, track_id, label, 0.9, (0, 0, 9, 9), zones, start,
                                       end if kind == END else None, False)], now)
        recorder.pump()
    recorder.close()
    return [json.loads(path.with_suffix(".json").read_text()) for path in written]


def test_overlapping_objects_share_a_clip_and_others_get_their_own(tmp_path):
    clips = recorded(tmp_path, [(1, "Bengal", 5, 10), (2, "Persian", 9, 14), (3, "Bengal", 15, 17),
                                (4, "dog", 30, 33), (5, "Bengal", 40, 42)], labels=["Bengal", "Persian"])
    # 3 came in 2's post-roll: one clip; 4 is no label of clips; 5 is alone
    assert [(clip["track_ids"], clip["labels"]) for clip in clips] == [([1, 2, 3], ["Bengal", "Persian"]),
                                                                       ([5], ["Bengal"])]
    assert clips[0]["duration_s"] >= 17 + 2 - (5 - 2)  # from the pre-roll of 1 to the post-roll of 3


def test_only_objects_seen_in_the_zones_make_clips(tmp_path):
    clips = recorded(tmp_path, [(1, "Bengal", 5, 8), (2, "Bengal", 20, 23)],
                     seen_in={1: ("lawn",), 2: ("door", "path")}, zones=["door"])
    assert [(clip["track_ids"], clip["zones"]) for clip in clips] == [([2], ["door", "path"])]


def test_a_clip_past_max_clip_s_goes_on_in_the_next_from_its_keyframe(tmp_path):
    clips = recorded(tmp_path, [(1, "Bengal", 5, 30)], max_clip_s=11)  # 11 s: not a whole number of GOPs
    assert [clip["track_ids"] for clip in clips] == [[1]] * 3
    for clip, following in zip(clips[:-1], clips[1:], strict=True):
        assert 11 <= clip["duration_s"] + 1 / FPS < 11 + GOP_S  # first to last frame, cut at the next keyframe
        assert following["start_stamp"] - clip["end_stamp"] == pytest.approx(1 / FPS)  # no frame lost between


def test_a_clip_never_spans_video_the_ring_lost(tmp_path):
    """The source reopened mid-clip (its first packet a keyframe, as a reopened or rewound stream's is): the clip
    ends there, and the object still in view goes on in a clip from there."""
    clips = recorded(tmp_path, [(1, "Bengal", 5, 20)], reopen_at=13.8)  # the keyframe at 14 s: its dts is 13.8
    assert [clip["track_ids"] for clip in clips] == [[1], [1]]
    assert clips[0]["end_stamp"] < 14 and clips[1]["start_stamp"] == 14


def test_a_source_that_gives_no_encoded_video_has_its_frames_encoded_for_clips(tmp_path, caplog):
    """The pattern (raw frames): every frame read is encoded into the ring (app/clips/encoder.py), from a keyframe,
    and the clip publisher has video to cut (tests/test_clips_raw.py makes clips of it)."""
    settings = clip_settings(tmp_path, "pattern", "camera.width=320", "camera.height=240")
    pipeline = Pipeline(settings, build_publishers(settings))
    pipeline.run(max_frames=3)
    assert not [r for r in caplog.records if "clips are on, but none is made" in r.getMessage()]
    ring = pipeline.capture.ring
    assert ring is not None and ring.template is not None
    held = ring.after(0)
    assert held[0][1].keyframe and len(held) >= 3  # every frame read, the skipped ones too


def test_old_clips_are_pruned_while_none_is_made_and_a_reload_keeps_an_unchanged_recorder(tmp_path, monkeypatch):
    settings = clip_settings(tmp_path, tmp_path / "camera.mp4", "clips.keep_days=1")
    folder = tmp_path / "clips" / settings.device.camera.name
    publisher = ClipPublisher(settings.device.clips)
    publisher.ring = PacketRing(1)
    ctx = PublishContext(settings, Stats(), settings.pipeline.publish, lossless=True)
    publisher.start(ctx)
    for day in (1, 2):
        stored_clip(folder, f"2026110{day}-120000-000Z_cam0", 100, 0)  # long past keep_days
    monkeypatch.setattr(clips_module, "PRUNE_EVERY_S", 0)
    publisher.finish([])  # a frame's events, none: the worker wakes
    publisher.close(time.monotonic() + 5)
    assert [path.name for path in folder.glob("*.json")] == ["20261102-120000-000Z_cam0.json"]  # the newest stays
    assert publisher.reconfigure(ctx)
    changed = clip_settings(tmp_path, tmp_path / "camera.mp4", "clips.keep_days=2")
    assert not publisher.reconfigure(PublishContext(changed, Stats(), changed.pipeline.publish))


def test_killed_mid_clip_it_leaves_no_visible_file_and_the_next_start_cleans_up(tmp_path):
    """kill -9 while a clip is being written (a camera paced as live, a cat in view from 2 s): the folder shows no
    file (the clip's is hidden and temporary), and the next start removes it."""
    source = make_h264(tmp_path / "camera.mp4", 30, 2, 28)
    pipeline = pet_pipeline(tmp_path, "cats", track={}, publish={"labels": sorted(CAT_BREEDS)})
    config = tmp_path / "config.yaml"
    config.write_text(f"camera: {{source: {source}, realtime: true}}\nclips: {{enabled: true, dir: clips}}\n")
    running = subprocess.Popen([sys.executable, "-m", "app", "run", "--config", str(config), "--pipeline",
                                str(pipeline)], cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = tmp_path / "clips" / "cam0"
    try:
        begun = wait_for(lambda: [path for path in folder.glob("*") if ".mp4" in path.name], "a clip being written",
                         timeout=60)
    finally:
        running.kill()
        running.wait()
    assert [path.name for path in folder.iterdir() if not path.name.startswith(".")] == []
    assert ClipFolder(folder).clean() == [begun[0].name] and list(folder.iterdir()) == []
