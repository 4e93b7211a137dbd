"""`app.config.load_settings`: the shipped files load, and every kind of mistake is one `FILE: key.path: ...` line.

Covers the shipped config.yaml and pipelines, unknown keys with a suggested fix, wrong types, pipeline stage
checks (unknown param or stage, missing or misordered stages), several problems reported at once, `${VAR}` and
`${VAR:-default}` substitution, `--set` overrides with type coercion and their errors, `Settings.resolve_path`,
unknown pipeline names, invalid YAML, the accelerator pattern, and each camera's HTTP port in `cameras:`, which its
name decides (never its place in the list).
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml

from app.cli import main
from app.config import DEFAULT_CONFIG, REQUIRED_STAGES, load_cameras, load_settings, pipeline_names
from app.errors import ConfigError
from app.model.manifest import read_labels
from conftest import SHARED

STAGES_OK = """stages:
  - preprocess: {resize: stretch}
  - inference: {model: model.tflite, threads: 2}
  - postprocess: {min_score: 0.5}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems(pipeline: str | Path = "classify", config: str | Path | None = None, overrides=()) -> list[str]:
    """The problem lines of a load that must fail."""
    with pytest.raises(ConfigError) as caught:
        load_settings(str(pipeline), config, list(overrides))
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def only_problem(*args, **kwargs) -> str:
    found = problems(*args, **kwargs)
    assert len(found) == 1, found
    return found[0]


# --- the shipped files -------------------------------------------------------------------------------------------


def test_shipped_pipelines_are_listed():
    assert {"classify", "detect", "face"} <= set(pipeline_names())


@pytest.mark.parametrize("name", pipeline_names())
def test_shipped_config_and_pipeline_load(name, monkeypatch):
    monkeypatch.delenv("SMARTCAM_SOURCE", raising=False)
    settings = load_settings(name)
    assert settings.config_path == DEFAULT_CONFIG
    assert settings.pipeline.name == name and settings.pipeline.description
    assert [n for n, _ in settings.pipeline.stages][:3] == list(REQUIRED_STAGES)
    assert settings.pipeline.publish is not None and settings.pipeline.overlay is not None
    assert settings.pipeline.inference.model
    assert settings.device.camera.source == "auto"  # ${SMARTCAM_SOURCE:-auto}
    assert settings.device.accelerator == "auto"


def test_shipped_config_reads_source_from_environment(monkeypatch):
    monkeypatch.setenv("SMARTCAM_SOURCE", "/dev/video7")
    assert load_settings("classify").device.camera.source == "/dev/video7"


# --- config.yaml mistakes ----------------------------------------------------------------------------------------


def test_unknown_key_names_file_path_and_closest_key(tmp_path):
    config = write(tmp_path, "config.yaml", "camera: {sorce: x}\n")
    line = only_problem(config=config)
    assert line.startswith(f"{config}: camera.sorce: ")
    assert "unknown key" in line and "did you mean camera.source" in line


def test_wrong_type_names_key_and_value(tmp_path):
    config = write(tmp_path, "config.yaml", "camera: {width: wide}\n")
    line = only_problem(config=config)
    assert line.startswith(f"{config}: camera.width: ") and "'wide'" in line


# --- pipeline file mistakes ----------------------------------------------------------------------------------------


FILTER = "  - filter: {labels: [cat]}\n"
PREPROCESS = "  - preprocess: {resize: stretch}\n"


@pytest.mark.parametrize("text, expected", [
    (STAGES_OK.replace("threads: 2", "thread: 2"),
     ["stages.inference.thread: ", "unknown key", "did you mean stages.inference.threads?"]),
    (STAGES_OK + "  - filtr: {}\n", ["stages[3]: ", "unknown stage filtr", "did you mean filter?"]),
    (STAGES_OK.replace("model: model.tflite, ", ""), ["stages.inference.model: ", "required"]),
    (STAGES_OK.replace("{min_score: 0.5}", "3"), ["stages.postprocess: ", "must be a mapping"]),
    ("descripton: typo\n" + STAGES_OK, ["descripton: ", "unknown key", "did you mean description?"]),
    ("\n".join(STAGES_OK.splitlines()[:3]) + "\n", ["stages: ", "needs a postprocess stage"]),
    ("stages:\n" + "\n".join(STAGES_OK.splitlines()[i] for i in (2, 1, 3)) + "\n",
     ["stages[0]: ", "inference must come after preprocess "
                     "(the order is preprocess, inference, postprocess, filter, track, crop)"]),
    (STAGES_OK.replace("stages:\n", "stages:\n" + FILTER), ["stages[0]: ", "filter must come after preprocess, "
                                                            "inference, postprocess"]),
    (STAGES_OK + "  - postprocess: {min_score: 0.7}\n", ["stages[3]: ", "a second postprocess stage"]),
    (STAGES_OK + PREPROCESS, ["stages[3]: ", "a second preprocess stage"]),
    (STAGES_OK + "  - overlay: {}\n", ["stages[3]: ", "overlay is a block of the output lane, not a stage",
                                        "`overlay: {...}`"]),
    (STAGES_OK + "  - publish: {labels: [cat]}\n", ["stages[3]: ", "publish is a block of the output lane"]),
    (STAGES_OK + "publish: {labels: [cat]}\npublish: {labels: [dog]}\n", ["line 6:1: ", "duplicate key publish"]),
    (STAGES_OK + "publish: [cat]\n", ["publish: ", "must be a mapping"]),
    (STAGES_OK + "overlay: {box: false}\n", ["overlay.box: ", "unknown key", "did you mean overlay.boxes?"]),
], ids=["unknown-param", "unknown-stage", "missing-param", "params-not-mapping", "unknown-top-key",
        "missing-stage", "wrong-order", "filter-first", "second-postprocess", "second-preprocess",
        "overlay-as-stage", "publish-as-stage", "second-publish", "publish-not-mapping", "unknown-overlay-key"])
def test_pipeline_mistake_is_one_line(tmp_path, text, expected):
    pipeline = write(tmp_path, "mine.yaml", text)
    line = only_problem(pipeline)
    assert line.startswith(f"{pipeline}: {expected[0]}"), line
    for part in expected[1:]:
        assert part in line


def test_pipeline_file_by_path_loads(tmp_path):
    settings = load_settings(str(write(tmp_path, "mine.yaml", STAGES_OK)))
    assert settings.pipeline.name == "mine"
    assert settings.pipeline.inference.model == "model.tflite"


def test_every_problem_is_reported_once(tmp_path):
    config = write(tmp_path, "config.yaml", "camera: {sorce: x, width: wide}\naccelerator: tpu\n")
    pipeline = write(tmp_path, "p.yaml", STAGES_OK.replace("threads: 2", "thread: 2"))
    found = problems(pipeline, config)
    assert sorted(line.split(": ")[1] for line in found) == [
        "accelerator", "camera.sorce", "camera.width", "stages.inference.thread"]
    assert all(line.startswith((f"{config}: ", f"{pipeline}: ")) for line in found)


# --- ${VAR} substitution -----------------------------------------------------------------------------------------

ENV_CONFIG = "camera:\n  source: ${SC_SOURCE}\n  name: ${SC_NAME:-fallback}\n  width: ${SC_WIDTH:-640}\n"


def test_environment_variables_and_defaults(tmp_path, monkeypatch):
    config = write(tmp_path, "config.yaml", ENV_CONFIG)
    monkeypatch.setenv("SC_SOURCE", "rtsp://cam/live")
    monkeypatch.delenv("SC_NAME", raising=False)
    monkeypatch.delenv("SC_WIDTH", raising=False)
    camera = load_settings("classify", config).device.camera
    assert (camera.source, camera.name, camera.width) == ("rtsp://cam/live", "fallback", 640)
    monkeypatch.setenv("SC_NAME", "porch")
    monkeypatch.setenv("SC_WIDTH", "320")
    camera = load_settings("classify", config).device.camera
    assert (camera.name, camera.width) == ("porch", 320)


def test_unset_variable_without_default_is_a_problem(tmp_path, monkeypatch):
    config = write(tmp_path, "config.yaml", ENV_CONFIG)
    monkeypatch.delenv("SC_SOURCE", raising=False)
    line = only_problem(config=config)
    assert line.startswith(f"{config}: camera.source: ") and "SC_SOURCE" in line and "not set" in line


# --- --set overrides ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("override, get, expected", [
    ("camera.width=640", lambda s: s.device.camera.width, 640),
    ("camera.source=0", lambda s: s.device.camera.source, "0"),
    ("camera.reconnect.max_delay_s=5", lambda s: s.device.camera.reconnect.max_delay_s, 5.0),
    ("stages.inference.threads=1", lambda s: s.pipeline.inference.threads, 1),
    ("stages.postprocess.min_score=0.7", lambda s: s.pipeline.postprocess.min_score, 0.7),
    ("stages.preprocess.float_range=[0, 1]", lambda s: s.pipeline.preprocess.float_range, (0.0, 1.0)),
])
def test_override_is_coerced_to_the_key_type(override, get, expected):
    value = get(load_settings("classify", overrides=[override]))
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("override, start, part", [
    ("stages.inference.threads=zero", "--set: stages.inference.threads: ", "'zero'"),
    ("stages.inference.threads=99", "--set: stages.inference.threads: ", "99"),
    ("camera.sorce=1", "--set: camera.sorce: ", "did you mean camera.source?"),
    ("stages.filter.min_area=0.1", "--set: stages.filter.min_area: ", "no such stage in classify.yaml"),
    ("foo", "--set foo: ", "KEY=VALUE"),
    ("=1", "--set =1: ", "KEY=VALUE"),
])
def test_bad_override_is_reported_as_set(override, start, part):
    line = only_problem(overrides=[override])
    assert line.startswith(start) and part in line


# --- paths, pipeline names, YAML, accelerator --------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    config = write(tmp_path / "device", "config.yaml", "models: {dir: my_models}\n")
    settings = load_settings("classify", config)
    assert settings.resolve_path(settings.device.models.dir) == tmp_path / "device" / "my_models"
    assert settings.resolve_path(str(SHARED / "models")) == SHARED / "models"
    assert load_settings("classify").resolve_path("models") == DEFAULT_CONFIG.parent / "models"


@pytest.mark.parametrize("name, hint", [("nosuch", None), ("detct", "did you mean detect?")])
def test_unknown_pipeline_lists_the_available_ones(name, hint):
    line = only_problem(name)
    assert repr(name) in line and f"available: {', '.join(pipeline_names())}" in line
    assert (hint in line) if hint else ("did you mean" not in line)


@pytest.mark.parametrize("which", ["config", "pipeline"])
def test_invalid_yaml_names_file_and_line(tmp_path, which):
    broken = write(tmp_path, "broken.yaml", "camera:\n  width: 1\n   height: 2\n")
    line = only_problem(broken, None) if which == "pipeline" else only_problem(config=broken)
    assert line.startswith(f"{broken}: line 3:10: ") and "not valid YAML" in line


def test_missing_config_file_is_a_problem(tmp_path):
    assert only_problem(config=tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: file not found"


@pytest.mark.parametrize("value", ["auto", "cpu", "edgetpu", "edgetpu:usb", "edgetpu:usb:1", "edgetpu:pci:0"])
def test_accelerator_accepted(tmp_path, value):
    config = write(tmp_path, "config.yaml", f"accelerator: {value}\n")
    settings = load_settings("classify", config, [f"stages.inference.accelerator={value}"])
    assert settings.device.accelerator == value == settings.pipeline.inference.accelerator


@pytest.mark.parametrize("value", ["tpu", "gpu", "edgetpu:usb:x", "edgetpu:"])
def test_accelerator_rejected(tmp_path, value):
    config = write(tmp_path, "config.yaml", f"accelerator: '{value}'\n")
    line = only_problem(config=config)
    assert line.startswith(f"{config}: accelerator: ") and repr(value) in line
    line = only_problem(overrides=[f"stages.inference.accelerator='{value}'"])
    assert line.startswith("--set: stages.inference.accelerator: ") and repr(value) in line


# --- files that must not hurt: one line, exit 2, bounded time and memory ---------------------------------------

LAUGHS = "a: &a [x, x]\n" + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}]\n"
                                    for i in range(24))


@pytest.mark.parametrize("data, expected", [
    (b"camera:\n  name: caf\xe9\n", "line 2: not UTF-8 text (byte 0xe9)"),
    (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)), "not UTF-8 text"),
    (b"camera: {name: a\x00b}\n", "line 1: a NUL byte"),
    (b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested more than 32 levels deep"),
    (b"a:\n" + b"".join(b" " * (2 * i) + b"- \n" for i in range(100)), "nested more than 32 levels deep"),
    (LAUGHS.encode(), "its aliases expand to more than 100000 values"),
    (b"a: &a [*a]\n", "not valid YAML"),
    (b"x: 1\n" * 300_000, "larger than 1024 KiB"),
    (b"camera: {name: a}\ncamera: {name: b}\n", "line 2:1: not valid YAML (duplicate key camera)"),
], ids=["latin-1", "binary", "nul", "deep-flow", "deep-block", "billion-laughs", "self-alias", "huge", "duplicate"])
def test_a_hostile_config_file_is_one_line(tmp_path, data, expected):
    config = tmp_path / "config.yaml"
    config.write_bytes(data)
    line = only_problem(config=config)
    assert line.startswith(f"{config}: ") and expected in line, line


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_config_path_that_is_no_file_is_one_line_and_never_read(tmp_path, kind):
    """A FIFO would wait for a writer forever, /dev/zero would be read until memory runs out."""
    path = {"fifo": tmp_path / "config.yaml", "device": Path("/dev/zero"), "directory": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    expected = {"fifo": "is a FIFO (named pipe)", "device": "is a character device", "directory": "is a directory"}
    assert only_problem(config=path) == (f"{path} {expected[kind]}, not a regular file: give a configuration file "
                                         "as a plain file")


@pytest.mark.parametrize("value", ["[" * 5000 + "]" * 5000, "{a: " * 40 + "1" + "}" * 40])
def test_a_set_value_nested_thousands_deep_is_one_short_line(value):
    assert only_problem("face", None, [f"camera.name={value}"]) == \
        "--set camera.name: the value is nested more than 32 levels deep"


def test_labels_that_are_a_device_are_refused_before_a_byte_is_read():
    with pytest.raises(ConfigError, match=r"^/dev/zero is a character device, not a regular file: give labels as "
                                          r"a plain file$"):
        read_labels(Path("/dev/zero"))


@pytest.mark.parametrize("override, expected", [
    ("udp.target=127.0.0.1:99999", "udp.target: port '99999' is not a number from 1 to 65535 (HOST:PORT)"),
    ("udp.target='[::1]:0'", "udp.target: port '0' is not a number from 1 to 65535"),
    ("zmq.bind=tcp://127.0.0.1:abc", "zmq.bind: port 'abc' is not a number from 1 to 65535 (tcp://ADDRESS:PORT)"),
    ("zmq.bind=tcp://127.0.0.1", "zmq.bind: expected tcp://ADDRESS:PORT"),
    ("zmq.bind=tcp://*:70000", "zmq.bind: port '70000' is not a number from 1 to 65535"),
    (f"zmq.bind=ipc:///tmp/{'x' * 120}", "zmq.bind: an ipc:// path is at most 107 bytes"),
])
def test_ports_a_socket_cannot_have_are_refused(override, expected):
    assert expected in only_problem("detect", None, [override])


@pytest.mark.parametrize("override", ["udp.target='[::1]:5600'", "udp.target=robot.local:65535", "zmq.bind=tcp://*:5601",
                                      "zmq.bind=ipc:///run/smartcam.sock"])
def test_ports_in_range_are_taken(override):
    assert load_settings("detect", None, [override])


def test_mqtt_tls_files_that_are_not_there_are_refused_with_the_path(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    config = write(tmp_path, "config.yaml", "mqtt:\n  enabled: true\n  tls: {enabled: true, ca: ca.pem, "
                   "cert: client.pem, key: /nowhere/client.key}\n")
    assert problems(config=config) == [
        f"{config}: mqtt.tls.cert: {tmp_path / 'client.pem'} is not a file (a certificate or key in PEM)",
        f"{config}: mqtt.tls.key: /nowhere/client.key is not a file (a certificate or key in PEM)"]
    ca.unlink()
    config.write_text("mqtt:\n  enabled: false\n  tls: {enabled: true, ca: ca.pem}\n")
    assert load_settings("classify", config)  # MQTT off: its files are not needed


@pytest.mark.parametrize("override, expected", [
    ("camera.width=100000", "camera.width: Input should be less than or equal to 10000"),
    ("camera.fps=100000", "camera.fps: Input should be less than or equal to 1000"),
    (f"camera.name={'x' * 3_000_000}", "camera.name: not a camera name: 1 to 64 letters, digits, spaces, _ . or -"),
    ("camera.name=front/door", "not a camera name: 1 to 64 letters, digits, spaces, _ . or -, starting with a "
                               "letter or digit (got 'front/door')"),
    ("mqtt.topic_prefix=home/#", "mqtt.topic_prefix: String should match pattern"),
    ("mqtt.client_id=a b", "mqtt.client_id: String should match pattern"),
    ("stages.postprocess.anchors.strides=[0]", "strides.0: Input should be greater than or equal to 1"),
])
def test_values_a_camera_cannot_have_are_refused(override, expected):
    line = only_problem("face", None, [override])
    assert expected in line and len(line) < 300, line[:300]


def test_a_pipeline_name_is_never_a_path(tmp_path):
    with pytest.raises(ConfigError, match=r"--pipeline '../config': a pipeline name is letters, digits"):
        load_settings("../config")
    write(tmp_path, "mine.yaml", STAGES_OK)
    assert load_settings(str(tmp_path / "mine.yaml")).pipeline.name == "mine"
    with pytest.raises(ConfigError, match="pipeline file not found"):
        load_settings(str(tmp_path / "missing.yaml"))


HTTP_OPEN = ["http.enabled=true", "http.bind=0.0.0.0"]


@pytest.mark.parametrize("bind, loopback", [("127.0.0.1", True), ("127.3.2.1", True), ("::1", True),
                                            ("localhost", True), ("127.evil.example", False), ("0.0.0.0", False),
                                            ("192.0.2.7", False)])
def test_loopback_is_decided_by_address(bind, loopback):
    from app.config import is_loopback

    assert is_loopback(bind) is loopback


def test_an_open_bind_needs_a_token_long_enough():
    assert "at least 16 characters (this one has 1)" in only_problem("classify", None, [*HTTP_OPEN, "http.token=x"])
    assert "at least 8 characters" in only_problem("classify", None, [*HTTP_OPEN, "http.username=u",
                                                                     "http.password=pw"])
    assert load_settings("classify", None, [*HTTP_OPEN, "http.token=0123456789abcdef"]).device.http.has_auth
    assert "http.allow_unauthenticated" in only_problem("classify", None, [*HTTP_OPEN,
                                                                          "http.bind=127.evil.example"])


def test_a_literal_secret_in_a_file_others_can_read_is_a_warning(tmp_path, monkeypatch):
    config = write(tmp_path, "config.yaml", "mqtt:\n  password: hunter22\nhttp:\n  token: ${TOKEN:-}\n")
    config.chmod(0o644)
    (warning,) = load_settings("classify", config).warnings
    assert f"{config}: mqtt.password written in a file every user can read (mode 644): chmod o-r" in warning
    assert "${cred:NAME}" in warning and "EnvironmentFile=" in warning
    config.chmod(0o640)
    assert load_settings("classify", config).warnings == ()
    config.chmod(0o644)
    monkeypatch.setenv("MQTT_PASSWORD", "hunter22")
    config.write_text("mqtt:\n  password: ${MQTT_PASSWORD}\n")
    assert load_settings("classify", config).warnings == ()


def test_a_systemd_credential_is_read_from_its_directory(tmp_path, monkeypatch):
    config = write(tmp_path, "config.yaml", "mqtt:\n  password: ${cred:mqtt_password}\n")
    assert "no credentials here ($CREDENTIALS_DIRECTORY is not set; the unit's LoadCredential=mqtt_password:FILE" \
        in only_problem("classify", config)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    assert f"${{cred:mqtt_password}}: cannot read {tmp_path / 'creds' / 'mqtt_password'}" in only_problem(
        "classify", config)  # the unit does not load it
    write(tmp_path, "creds/mqtt_password", "s3cret\n")
    assert load_settings("classify", config).device.mqtt.password == "s3cret"


# --- several cameras: each one's HTTP port ------------------------------------------------------------------------


def camera_ports(folder: Path, cameras: list[dict], http: dict | None = None) -> dict[str, int]:
    """Each camera's HTTP port by name, as loading config.yaml with `cameras:` (HTTP on at port 8080) gives it."""
    config = write(folder, "cameras.yaml", yaml.safe_dump({"cameras": cameras, "http": {"enabled": True,
                                                                                       "port": 8080, **(http or {})}}))
    return {run.device.camera.name: run.device.http.port for run in load_cameras("classify", config)}


def test_a_camera_keeps_its_port_whatever_the_order_of_the_list(tmp_path):
    names = ["front", "back", "dock", "yard"]
    ports = camera_ports(tmp_path, [{"name": name} for name in names])
    assert ports == {"front": 8814, "back": 8503, "dock": 9009, "yard": 8344}  # 8080 + CRC-32 of the name % 1000
    assert camera_ports(tmp_path, [{"name": name} for name in reversed(names)]) == ports
    assert camera_ports(tmp_path, [{"name": name} for name in ["yard", "front", "dock"]]) == {
        name: ports[name] for name in ["yard", "front", "dock"]}  # one taken away: the others stay


def test_a_camera_may_give_its_own_port_and_a_lone_one_keeps_http_port(tmp_path):
    assert camera_ports(tmp_path, [{"name": "front", "http": {"port": 8080}}, {"name": "back"}]) == {
        "front": 8080, "back": 8503}
    assert camera_ports(tmp_path, [{"name": "back"}]) == {"back": 8080}
    assert camera_ports(tmp_path, [{"name": "back"}, {"name": "front"}], {"port": 0}) == {"back": 0, "front": 0}


@pytest.mark.parametrize("cameras, expected", [
    ([{"name": "north"}, {"name": "bay"}], "cameras: north and bay would both listen on HTTP port 8594 (north's "
     "from its name, bay's from its name): give one of them a port of its own, e.g. http: {port: 8595} in bay's "
     "entry"),
    ([{"name": "front"}, {"name": "back", "http": {"port": 8814}}], "cameras: front and back would both listen on "
     "HTTP port 8814 (front's from its name, back's given): give one of them a port of its own, e.g. http: "
     "{port: 8815} in front's entry"),
    ([{"name": "cam20"}, {"name": "cam362"}, {"name": "cam743"}], "cameras: cam20, cam362 and cam743 would all listen "
     "on HTTP port 8664 (cam20's from its name, cam362's from its name, cam743's from its name): give one of them a "
     "port of its own, e.g. http: {port: 8665} in cam743's entry"),
])
def test_two_cameras_on_one_port_are_refused_with_one_line(tmp_path, cameras, expected):
    with pytest.raises(ConfigError) as caught:
        camera_ports(tmp_path, cameras)
    assert caught.value.problems == [f"{tmp_path / 'cameras.yaml'}: {expected}"]


def test_a_clash_is_no_problem_while_http_is_off_and_a_port_past_65535_is(tmp_path):
    assert camera_ports(tmp_path, [{"name": "north"}, {"name": "bay"}], {"enabled": False}) == {
        "north": 8594, "bay": 8594}
    with pytest.raises(ConfigError) as caught:
        camera_ports(tmp_path, [{"name": "front"}, {"name": "back"}], {"port": 65000})
    assert caught.value.problems == [f"{tmp_path / 'cameras.yaml'}: cameras: front's HTTP port from its name, 65734, "
                                     "is beyond 65535: lower http.port (to at most 64536) or give front its own, "
                                     "http: {port: N} in its entry"]


def test_a_misspelt_key_of_a_cameras_own_http_gets_the_closest_one(tmp_path):
    with pytest.raises(ConfigError, match=r"cameras\.0\.http\.prot: unknown key \(did you mean "
                                          r"cameras\.0\.http\.port\?\)"):
        camera_ports(tmp_path, [{"name": "front", "http": {"prot": 8081}}, {"name": "back"}])


def test_validate_shows_each_cameras_port(tmp_path):
    config = write(tmp_path, "cameras.yaml", yaml.safe_dump({
        "cameras": [{"name": "front", "source": "pattern"}, {"name": "back", "source": "pattern",
                                                             "http": {"port": 9000}}],
        "http": {"enabled": True, "port": 8080}, "models": {"dir": str(SHARED / "models")}}))
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["validate", "--config", str(config), "--pipeline", "classify"])
    assert (code, out.getvalue()) == (0, "camera front: http port 8814\ncamera back: http port 9000\nok\n")

