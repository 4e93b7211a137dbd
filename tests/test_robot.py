"""The robot output: real pipeline runs (the pet SSD, MobileNet) sending over real UDP and ZeroMQ sockets on
127.0.0.1 to receivers in this process, every message checked against app/outputs/robot/detections.schema.json; the
ROS 2 bridge's conversions with stand-ins for vision_msgs' classes (rclpy is not installable here)."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import jsonschema
import pytest
import zmq

from app.config import UdpConfig, ZmqConfig, load_settings
from app.errors import ConfigError
from app.frame import Detection, Frame
from app.metrics import Stats
from app.pipeline import Pipeline
from app.outputs.robot import build_robot_outputs, client, ros_bridge
from app.outputs.robot import zmq as robot_zmq
from app.outputs.robot.base import RobotContext, score_threshold
from app.outputs.robot.udp import UdpOutput
from app.outputs.robot.zmq import ZmqOutput
from conftest import (BLANK, CAT_BREEDS, IMAGES, MODELS, PET, PET_LABEL_FILE, PROJECT, Background, Collector,
                      FakeCamera, free_port, imread, pet_pipeline, wait_for)

SCHEMA = json.loads((PROJECT / "app" / "outputs" / "robot" / "detections.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
PET_LABELS = dict(enumerate(PET_LABEL_FILE.read_text().split()))


def valid(message: dict) -> dict:
    """The message, after checking it against the schema."""
    VALIDATOR.validate(message)
    return message


class UdpReceiver:
    """A robot on 127.0.0.1 that keeps every datagram, decoded, in a thread of its own."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.messages: list[dict] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closing.is_set():
            try:
                self.messages.append(json.loads(self.sock.recv(65535)))
            except TimeoutError:
                continue

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def robot() -> Iterator[UdpReceiver]:
    receiver = UdpReceiver()
    yield receiver
    receiver.close()


class ZmqReceiver:
    """A robot subscribed to a smartcam PUB endpoint, keeping (topic, message) in a thread of its own."""

    def __init__(self, endpoint: str, topic: str = "") -> None:
        self.sub: zmq.Socket = zmq.Context.instance().socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVTIMEO, 200)
        self.sub.subscribe(topic)
        self.sub.connect(endpoint)
        self.messages: list[tuple[str, dict]] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closing.is_set():
            try:
                topic, payload = self.sub.recv_multipart()
            except zmq.Again:
                continue
            self.messages.append((topic.decode(), json.loads(payload)))

    def of(self, camera: str) -> list[dict]:
        """The messages of one camera (not the probe's), checked against the schema."""
        return [valid(m) for topic, m in list(self.messages) if topic.startswith(f"{camera}/")]

    def topics(self, camera: str) -> list[str]:
        return [topic for topic, _ in list(self.messages) if topic.startswith(f"{camera}/")]

    def __enter__(self) -> ZmqReceiver:
        return self

    def __exit__(self, *_: object) -> None:
        self._closing.set()
        self._thread.join(5)
        self.sub.close()


def context(camera: str = "cam0", stats: Stats | None = None) -> RobotContext:
    return RobotContext(camera, "test", camera, PET_LABELS, stats or Stats())


def frame(seq: int = 1, detections: int = 1) -> Frame:
    box = (10.0, 20.0, 110.0, 220.0)
    return Frame(BLANK, seq, "cam0", detections=[Detection("Bengal", 5, 0.9, box)] * detections,
                 timing={"inference": 5.0, "exposure_to_result": 9.0})


def until_subscribed(bind: str, receiver: ZmqReceiver) -> None:
    """Wait until `receiver`'s subscription has reached the PUB socket on `bind` (ZeroMQ's slow joiner: until then
    a PUB drops what it sends), by sending a camera `probe`'s frames through the same, shared, socket."""
    probe = ZmqOutput(ZmqConfig(enabled=True, bind=bind))
    probe.start(context("probe"))

    def heard() -> bool:
        probe.send(frame())
        return any(topic.startswith("probe/") for topic, _ in list(receiver.messages))

    try:
        wait_for(heard, f"the subscriber to hear the probe on {bind}")
    finally:
        probe.close()


def udp_to(robot: UdpReceiver, label_info_s: float = 3600) -> list[str]:
    """`--set`s that send to `robot` (with the class map at start only, unless told)."""
    return ["udp.enabled=true", f"udp.target=127.0.0.1:{robot.port}", f"udp.label_info_s={label_info_s}"]


def zmq_on(bind: str, label_info_s: float = 3600) -> list[str]:
    """`--set`s that publish on `bind` (with the class map at start only, unless told)."""
    return ["zmq.enabled=true", f"zmq.bind={bind}", f"zmq.label_info_s={label_info_s}"]


def received(messages: list[dict], count: int) -> list[dict] | None:
    """The messages once `count` have come (and no more: more fails the test)."""
    assert len(messages) <= count, f"{len(messages)} messages, more than {count}: {messages[count:]}"
    return messages if len(messages) == count else None


def frame_messages(messages: list[dict]) -> list[dict]:
    return [valid(m) for m in messages if m["type"] != "label_info"]


def assert_same_detections(message: dict, result: dict) -> None:
    """A robot message's detections are the frame's (as the output lane's result has them)."""
    assert message["seq"] == result["seq"]
    assert message["stamp_monotonic_ns"] == result["stamp"]["monotonic_ns"]
    stamp = message["header"]["stamp"]
    assert stamp["sec"] + stamp["nanosec"] / 1e9 == pytest.approx(result["ts"], abs=2e-6)
    assert message["size"] == result["size"]
    assert len(message["detections"]) == len(result["detections"])
    for sent, found in zip(message["detections"], result["detections"], strict=True):
        hypothesis = sent["results"][0]["hypothesis"]
        assert (hypothesis["label"], hypothesis["class_id"]) == (found["label"], str(found["class_id"]))
        assert hypothesis["score"] == pytest.approx(found["score"], abs=1e-4)
        center, w, h = sent["bbox"]["center"]["position"], sent["bbox"]["size_x"], sent["bbox"]["size_y"]
        box = [center["x"] - w / 2, center["y"] - h / 2, center["x"] + w / 2, center["y"] + h / 2]
        assert box == pytest.approx(found["box"], abs=0.1)
        assert sent["id"] == str(found.get("track_id", ""))
        assert sent["header"] == message["header"]


def test_udp_sends_one_datagram_per_processed_frame_stamped_with_its_detections(tmp_path, two_pets_clip, robot):
    pipeline = pet_pipeline(tmp_path, postprocess={"min_score": 0.3})
    settings = load_settings(str(pipeline), None, [f"camera.source={two_pets_clip}", "camera.frame_id=cam0_optical",
                                                   *udp_to(robot)])
    collector = Collector()
    stats = Pipeline(settings, [collector]).run()
    frames = wait_for(lambda: received(list(robot.messages), stats.processed + 1),
                      lambda: f"{stats.processed} frames' datagrams (got {len(robot.messages)})")
    frames = frame_messages(frames)
    assert valid(robot.messages[0])["type"] == "label_info"  # first, before any frame
    assert len(frames) == stats.processed == collector.count > 0
    assert [m["seq"] for m in frames] == [r["seq"] for r in collector.results]  # in order, none twice
    for message, result in zip(frames, collector.results, strict=True):
        assert (message["type"], message["camera"], message["pipeline"]) == ("detections", "cam0", "pets")
        assert message["header"]["frame_id"] == "cam0_optical"
        assert message["stamp_source"] == result["stamp"]["source"]
        assert message["latency_ms"]["exposure_to_result"] > 0
        assert_same_detections(message, result)
    assert sum(len(m["detections"]) for m in frames) >= 2 * len(frames) - 2  # the cat and the dog
    assert not stats.drop_counts()


def test_zmq_publishes_one_message_per_processed_frame_under_the_cameras_topic(tmp_path):
    bind = f"tcp://127.0.0.1:{free_port()}"
    settings = load_settings(str(pet_pipeline(tmp_path)), None, [*zmq_on(bind, label_info_s=0.05)])
    # a frame every 0.1 s: the class map is due again before each
    camera = FakeCamera([imread(IMAGES / "cat.bmp"), imread(IMAGES / "pets.jpg"), BLANK] * 3, pause=0.1, live=False,
                        flowing=False)
    collector = Collector()
    pipeline = Pipeline(settings, [collector], camera)
    with Background(pipeline) as run:
        wait_for(camera.waiting.is_set, "the pipeline to start and wait for its camera")
        with ZmqReceiver(bind) as receiver:  # after the class map sent at start, which no one heard
            until_subscribed(bind, receiver)
            camera.flow()
            run.thread.join(60)
            messages = wait_for(lambda: received(receiver.of("cam0"), 2 * pipeline.stats.processed), "the messages")
            topics = receiver.topics("cam0")
    assert topics == ["cam0/label_info", "cam0/detections"] * 9
    assert pipeline.stats.processed == collector.count == 9
    frames = frame_messages(messages)
    for message, result in zip(frames, collector.results, strict=True):
        assert_same_detections(message, result)
    assert [len(m["detections"]) > 0 for m in frames] == [True, True, False] * 3  # cat, pets, nothing
    assert not robot_zmq._endpoints, "the last user closed the socket"


def test_track_ids_are_the_detections_ids(tmp_path, robot):
    pipeline = pet_pipeline(tmp_path, track={"min_hits": 2})
    settings = load_settings(str(pipeline), None, [*udp_to(robot)])
    collector = Collector()
    stats = Pipeline(settings, [collector], FakeCamera(pause=0, live=False, images=[imread(IMAGES / "cat.bmp")] * 5)
                     ).run()
    assert stats.processed == 5
    frames = frame_messages(wait_for(lambda: received(list(robot.messages), 6), "5 frames' datagrams"))
    ids = [[d["id"] for d in m["detections"]] for m in frames]
    assert ids[0] == [""] * len(ids[0])  # tentative: no id yet
    assert all(ids[-1]) and ids[-1][0].isdigit()
    for message, result in zip(frames, collector.results, strict=True):
        assert_same_detections(message, result)


@pytest.mark.parametrize("kind, min_score, classes", [("auto", 0.1, [("286", "Egyptian cat")]),
                                                      ("classifier", 1.0, []), ("auto", 1.0, [])])
def test_a_classifier_sends_classification_even_with_no_class_above_its_threshold(robot, kind, min_score, classes):
    settings = load_settings("classify", None, [
        f"camera.source={IMAGES / 'cat.bmp'}", f"stages.inference.model={MODELS / 'mobilenet_v2_1.0_224_quant.tflite'}",
        f"stages.inference.labels={MODELS / 'imagenet_labels.txt'}", f"stages.postprocess.kind={kind}",
        f"stages.postprocess.min_score={min_score}", *udp_to(robot)])
    stats = Pipeline(settings, []).run()
    label_info, message = wait_for(lambda: received(list(robot.messages), 2), "2 datagrams")
    assert stats.processed == 1
    assert valid(message)["type"] == "classification"
    assert [(r["class_id"], r["label"]) for r in message["results"][:1]] == classes
    assert valid(label_info)["threshold"] == pytest.approx(min_score)
    assert {"class_id": 286, "class_name": "Egyptian cat"} in label_info["class_map"]


def test_the_class_map_comes_first_and_again_every_label_info_s(tmp_path, robot):
    settings = load_settings(str(pet_pipeline(tmp_path, postprocess={"min_score": 0.4})), None, [
        *udp_to(robot, label_info_s=0.05)])
    # each frame 0.1 s after the one before: the class map is due again before every frame
    stats = Pipeline(settings, [], FakeCamera(pause=0.1, live=False, images=[BLANK] * 4)).run()
    messages = wait_for(lambda: received(list(robot.messages), 9), "the class map at start, then 4 frames after it")
    assert [m["type"] for m in messages] == ["label_info"] + ["label_info", "detections"] * 4
    assert stats.processed == 4
    label_info = valid(messages[0])
    assert label_info["class_map"] == [{"class_id": i, "class_name": n} for i, n in sorted(PET_LABELS.items())]
    assert label_info["class_map"][0] == {"class_id": 0, "class_name": "Abyssinian"}
    assert (label_info["threshold"], label_info["camera"], label_info["header"]["frame_id"]) == (0.4, "cam0", "cam0")


def test_a_datagram_too_large_is_counted_not_raised_and_the_next_one_goes(robot):
    stats = Stats()
    output = UdpOutput(UdpConfig(enabled=True, target=f"127.0.0.1:{robot.port}"))
    output.start(context(stats=stats))
    output.send(frame(1, detections=400))
    output.send(frame(2))
    output.close()
    messages = wait_for(lambda: received(list(robot.messages), 2), "the class map and frame 2")
    assert [(m["type"], m.get("seq")) for m in messages] == [("label_info", None), ("detections", 2)]
    assert stats.drop_counts() == {"udp_too_large": 1}


def test_a_closed_port_is_counted_as_udp_errors_and_the_run_goes_on(tmp_path, caplog):
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens: each datagram is answered by an ICMP port unreachable
    settings = load_settings(str(pet_pipeline(tmp_path)), None, ["udp.enabled=true", f"udp.target=127.0.0.1:{port}"])
    stats = Pipeline(settings, [], FakeCamera(pause=0, live=False, images=[BLANK] * 6)).run()
    assert stats.processed == 6
    assert stats.drop_counts()["udp_error"] >= 1
    assert [r.message for r in caplog.records].count(
        f"udp: sending to 127.0.0.1:{port} failed: ECONNREFUSED (Connection refused); counted as udp_error drops, "
        "not logged again") == 1


def test_a_name_is_resolved_in_the_background_and_sent_to_once_it_resolves(robot):
    stats = Stats()
    output = UdpOutput(UdpConfig(enabled=True, target=f"localhost:{robot.port}"))
    output.start(context(stats=stats))
    try:
        wait_for(lambda: output.health()["ok"], "localhost to resolve")
        output.send(frame(1))
        wait_for(lambda: [m["type"] for m in robot.messages] == ["label_info", "detections"], "the datagrams")
    finally:
        output.close()


def test_a_name_with_an_ipv6_and_an_ipv4_address_is_sent_to_over_ipv4(robot):
    """Debian 13's /etc/hosts names ::1 localhost first: a robot listening on 127.0.0.1 must still hear. The name's
    addresses are given here, in that order, to the output already sending (no resolver thread races the test's
    own, which made it fail 1 run in 5); its new socket is connected before it sends."""
    output = UdpOutput(UdpConfig(enabled=True, target=f"127.0.0.1:{robot.port}"))
    output.start(context())
    try:
        output.send(frame(0))  # the first socket, connected
        both = [(socket.AF_INET6, socket.SOCK_DGRAM, 17, "", ("::1", robot.port, 0, 0)),
                (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.1", robot.port))]
        output._open(both)
        output.send(frame(1))
        wait_for(lambda: (("detections", 1) in [(m["type"], m.get("seq")) for m in robot.messages]),
                 "the frame's datagram over IPv4")
    finally:
        output.close()


def test_a_name_that_does_not_resolve_is_waited_for_not_an_error():
    stats = Stats()
    output = UdpOutput(UdpConfig(enabled=True, target="smartcam-robot.invalid:5600"))
    output.start(context(stats=stats))  # no exception: DNS may come up later
    try:
        output.send(frame(1))
        assert stats.drop_counts() == {"udp_unresolved": 1}
        wait_for(lambda: "does not resolve" in str(stats.health["udp"]().get("last_error")), "the lookup to fail", 30)
        assert stats.health["udp"]()["ok"] is False
        assert stats.health["udp"]()["state"] == "resolving"
    finally:
        output.close()


def test_a_multicast_group_is_sent_to_with_its_ttl_and_looped_back():
    """The client, a member of the group on this board, hears it (looped back). Joined and sent on the loopback
    interface, so the test needs no network: Linux carries multicast on lo, with or without a default route."""
    group = "239.255.42.99"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
    messages = client.receive_udp(f"{group}:{port}", interface="127.0.0.1")
    output = UdpOutput(UdpConfig(enabled=True, target=f"{group}:{port}", multicast_ttl=3))
    output.start(context())
    assert output._socket is not None
    output._socket.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    sending = threading.Event()

    def send() -> None:  # until the client, which joins when first asked for a message, has heard
        while not sending.wait(0.05):
            output.send(frame())

    threading.Thread(target=send, daemon=True).start()
    socket.setdefaulttimeout(10)  # for the client's socket, made now: a datagram that never comes fails the test
    try:
        got = [next(messages), next(messages)]
    except TimeoutError:
        raise AssertionError("nothing came to the multicast group") from None
    finally:
        socket.setdefaulttimeout(None)
        sending.set()
        messages.close()
    ttl = output._socket.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL)
    output.close()
    assert {valid(m)["type"] for m in got} <= {"label_info", "detections"} and got[-1]["type"] == "detections"
    assert ttl == 3


def test_a_zmq_port_in_use_is_waited_for_and_bound_once_free(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    bind = f"tcp://127.0.0.1:{holder.getsockname()[1]}"
    settings = load_settings(str(pet_pipeline(tmp_path)), None, [*zmq_on(bind), "camera.motion.enabled=false"])
    pipeline = Pipeline(settings, [], FakeCamera(pause=0.02))  # live: it goes on until stopped
    try:
        with Background(pipeline), ZmqReceiver(bind) as receiver:
            wait_for(lambda: pipeline.stats.drop_counts().get("zmq_unbound", 0) >= 3, "frames dropped, unbound")
            assert pipeline.stats.health["zmq"]()["state"] == "waiting"
            holder.close()  # the previous owner of the port has gone
            wait_for(lambda: pipeline.stats.health["zmq"]()["ok"], "the socket to bind")
            wait_for(lambda: len(frame_messages(receiver.of("cam0"))) >= 3, "frames over ZeroMQ")
    finally:
        holder.close()


def test_a_malformed_zmq_endpoint_is_a_config_error():
    """What validation does not catch (its test is in test_config.py) ZeroMQ refuses, and that is a ConfigError too."""
    output = ZmqOutput(ZmqConfig.model_construct(enabled=True, bind="tcp://127.0.0.1", label_info_s=5.0))
    with pytest.raises(ConfigError, match="zmq.bind tcp://127.0.0.1"):
        output.start(context())
    assert not robot_zmq._endpoints


def test_two_cameras_share_one_zmq_bind_each_under_its_own_topic(tmp_path):
    bind = f"tcp://127.0.0.1:{free_port()}"
    path = pet_pipeline(tmp_path)
    runs = []
    for name, image in (("left", "cat.bmp"), ("right", "pets.jpg")):
        settings = load_settings(str(path), None, [f"camera.name={name}", *zmq_on(bind)])
        camera = FakeCamera([imread(IMAGES / image)] * 6, pause=0, live=False, flowing=False)
        runs.append((Pipeline(settings, [], camera), camera))
    with Background(runs[0][0]) as left, Background(runs[1][0]) as right:
        for _, camera in runs:
            wait_for(camera.waiting.is_set, "both pipelines to start")
        assert robot_zmq._endpoints[bind].users == 2  # one socket for both
        with ZmqReceiver(bind) as receiver:
            until_subscribed(bind, receiver)
            for _, camera in runs:
                camera.flow()
            left.thread.join(60)
            right.thread.join(60)
            wait_for(lambda: received(receiver.of("left"), 6) and received(receiver.of("right"), 6), "6 frames each")
    for (pipeline, _), name in zip(runs, ("left", "right"), strict=True):
        frames = frame_messages(receiver.of(name))
        assert pipeline.stats.processed == len(frames) == 6
        assert [m["seq"] for m in frames] == list(range(1, 7))
        assert {m["camera"] for m in frames} == {name}
    assert {m["detections"][0]["results"][0]["hypothesis"]["label"] for m in frame_messages(receiver.of("left"))} \
        <= CAT_BREEDS
    assert not robot_zmq._endpoints
    again: zmq.Socket = zmq.Context.instance().socket(zmq.PUB)
    again.bind(bind)  # the last user closed it: the port is free
    again.close(linger=0)


def test_build_robot_outputs_turns_on_what_config_says(tmp_path):
    path = pet_pipeline(tmp_path, postprocess={"min_score": 0.3}, filter={"min_score": 0.6})
    assert build_robot_outputs(load_settings(str(path), None, [])) == []
    settings = load_settings(str(path), None, ["udp.enabled=true", "zmq.enabled=true"])
    assert [type(o) for o in build_robot_outputs(settings)] == [UdpOutput, ZmqOutput]
    assert score_threshold(settings.pipeline) == 0.6  # the filter's, stricter than postprocess's
    loose = load_settings(str(pet_pipeline(tmp_path, "loose", postprocess={"min_score": 0.3}, filter={})))
    assert score_threshold(loose.pipeline) == 0.3


def test_the_client_prints_one_line_per_frame():
    port = free_port()
    client = subprocess.Popen([sys.executable, "-m", "app.outputs.robot.client", "udp", f"127.0.0.1:{port}"],
                              cwd=PROJECT, stdout=subprocess.PIPE, text=True)
    output = UdpOutput(UdpConfig(enabled=True, target=f"127.0.0.1:{port}"))
    output.start(context())
    assert client.stdout is not None
    stdout = client.stdout

    def printed() -> str:
        output.send(frame())  # again and again: the client binds its socket when it is ready
        return stdout.readline() if select.select([stdout], [], [], 0.1)[0] else ""

    try:
        line = wait_for(printed, "the client's line")
    finally:
        output.close()
        client.kill()
        client.wait(5)
    assert line.startswith("cam0 seq 1 stamp ") and "Bengal" in line and line.endswith(" ms after arrival\n")


# --- the ROS 2 bridge, with stand-ins for the message classes made from vision_msgs 4.1.1's .msg files
# --- (ros-perception/vision_msgs tag 4.1.1, e77fa2d; std_msgs, geometry_msgs: ros2/common_interfaces 4.2, Humble;
# --- builtin_interfaces: ros2/rcl_interfaces)

MSG_FIELDS = {
    "Time": {"sec": "int32", "nanosec": "uint32"},
    "Header": {"stamp": "Time", "frame_id": "string"},
    "Point": {"x": "float64", "y": "float64", "z": "float64"},
    "Quaternion": {"x": "float64", "y": "float64", "z": "float64", "w": "float64"},
    "Pose": {"position": "Point", "orientation": "Quaternion"},
    "PoseWithCovariance": {"pose": "Pose", "covariance": "float64[36]"},
    "ObjectHypothesis": {"class_id": "string", "score": "float64"},
    "ObjectHypothesisWithPose": {"hypothesis": "ObjectHypothesis", "pose": "PoseWithCovariance"},
    "Point2D": {"x": "float64", "y": "float64"},
    "Pose2D": {"position": "Point2D", "theta": "float64"},
    "BoundingBox2D": {"center": "Pose2D", "size_x": "float64", "size_y": "float64"},
    "Detection2D": {"header": "Header", "results": "ObjectHypothesisWithPose[]", "bbox": "BoundingBox2D",
                    "id": "string"},
    "Detection2DArray": {"header": "Header", "detections": "Detection2D[]"},
    "Classification": {"header": "Header", "results": "ObjectHypothesis[]"},
    "VisionClass": {"class_id": "uint16", "class_name": "string"},
    "LabelInfo": {"header": "Header", "class_map": "VisionClass[]", "threshold": "float32"},
}
INT_RANGES = {"int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1), "uint16": (0, 2**16 - 1)}


def check_value(kind: str, value: object, msgs: SimpleNamespace) -> None:
    """As rclpy's generated setters check: the right Python type (and range) for the field's ROS type."""
    element, _, size = kind.partition("[")
    if size:
        assert isinstance(value, list), f"{kind}: {value!r}"
        assert size == "]" or len(value) == int(size[:-1]), f"{kind}: {len(value)} elements"
        for item in value:
            check_value(element, item, msgs)
    elif element in INT_RANGES:
        low, high = INT_RANGES[element]
        assert type(value) is int and low <= value <= high, f"{kind}: {value!r}"
    elif element.startswith("float"):
        assert type(value) is float, f"{kind}: {value!r}"
    elif element == "string":
        assert type(value) is str, f"{kind}: {value!r}"
    else:
        assert isinstance(value, getattr(msgs, element)), f"{kind}: {value!r}"


def stand_ins() -> SimpleNamespace:
    msgs = SimpleNamespace()
    for name, fields in MSG_FIELDS.items():
        def init(self, _fields=fields, **values) -> None:
            assert set(values) == set(_fields), f"{type(self).__name__}: {sorted(values)} != {sorted(_fields)}"
            for field, value in values.items():
                check_value(_fields[field], value, msgs)
                setattr(self, field, value)
        setattr(msgs, name, type(name, (), {"__init__": init}))
    return msgs


def test_the_ros_bridge_sets_every_field_of_detection2d_array_and_label_info(tmp_path, robot):
    settings = load_settings("detect", None, [*PET, f"camera.source={IMAGES / 'cat.bmp'}", *udp_to(robot)])
    Pipeline(settings, []).run()
    label_info, message = wait_for(lambda: received(list(robot.messages), 2), "2 datagrams")
    msgs = stand_ins()
    array = ros_bridge.to_detection2d_array(valid(message), msgs)  # every constructor checks all its fields
    stamp = message["header"]["stamp"]
    assert (array.header.stamp.sec, array.header.stamp.nanosec) == (stamp["sec"], stamp["nanosec"])
    assert array.header.frame_id == "cam0"
    cat = array.detections[0]
    sent = message["detections"][0]
    assert cat.results[0].hypothesis.class_id == sent["results"][0]["hypothesis"]["class_id"]
    assert PET_LABELS[int(cat.results[0].hypothesis.class_id)] == sent["results"][0]["hypothesis"]["label"]
    assert cat.bbox.center.position.x == pytest.approx((185 + 338) / 2, abs=15)  # cat.bmp's known box
    assert cat.bbox.size_x == sent["bbox"]["size_x"] and cat.id == sent["id"]
    assert cat.results[0].pose.pose.orientation.w == 1.0 and len(cat.results[0].pose.covariance) == 36
    info = ros_bridge.to_label_info(valid(label_info), msgs)
    assert [(c.class_id, c.class_name) for c in info.class_map] == sorted(PET_LABELS.items())
    assert info.threshold == 0.5
    assert ros_bridge.to_label_info({**label_info, "threshold": 1}, msgs).threshold == 1.0  # a JSON integer
    classified = {k: v for k, v in message.items() if k != "detections"} | {
        "type": "classification", "results": [{"class_id": "286", "score": 0.8, "label": "Egyptian cat"}]}
    result = ros_bridge.to_classification(valid(classified), msgs)
    assert (result.results[0].class_id, result.results[0].score) == ("286", 0.8)
    assert result.header.stamp.sec == stamp["sec"]


def test_ros_topics_are_valid_ros_names():
    assert ros_bridge.topic("cam0", "detections") == "/smartcam/cam0/detections"
    assert ros_bridge.topic("front-left.1", "label_info") == "/smartcam/front_left_1/label_info"
    assert ros_bridge.topic("0cam", "detections") == "/smartcam/_0cam/detections"


def test_the_ros_bridge_says_what_it_needs_without_ros(capsys):
    assert ros_bridge.main(["--udp", ":0"]) == 1
    assert "source /opt/ros/humble/setup.bash" in capsys.readouterr().err
