"""No password shown to anyone: a camera URL's credentials (userinfo and query) never reach `/healthz`,
`/api/stats`, `/metrics`, MQTT or the log, a webhook's never reach the log, and `/healthz`, which needs no auth,
names no address at all; a credential written in a world-readable config file is a warning that names the key."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import yaml

from app.cameras import Cameras
from app.config import CameraConfig, ReconnectConfig, WebhooksConfig, load_device, load_settings, secret_warnings
from app.errors import ConfigError, SourceError
from app.metrics import Stats
from app.outputs.webhooks import Sender
from app.sources.base import Captured, EndOfStream, Source
from app.sources.stream import StreamSource
from app.sources.reconnect import Reconnecting
from conftest import PET, PROJECT, Collector, free_port, subscribed, wait_for

SECRETS = ("S3cretUser", "S3cretQuery", "S3cretTok")
TOKEN = "0123456789abcdef-http-token"


def camera_url(port: int) -> str:
    """An IP camera's URL with a password in its userinfo and in its query, on a port where nothing listens."""
    return (f"http://admin:{SECRETS[0]}@127.0.0.1:{port}/videostream.cgi?user=admin&pwd={SECRETS[1]}"
            f"&token={SECRETS[2]}&rate=0")


def shown(port: int) -> str:
    return f"http://***@127.0.0.1:{port}/videostream.cgi?user=***&pwd=***&token=***&rate=0"


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def get(port: int, path: str, token: str = "") -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


# --- end to end: a camera that is down, its URL echoed by every error -------------------------------------------


def test_no_camera_secret_reaches_healthz_stats_metrics_mqtt_or_the_log(broker):
    camera_port, page_port = free_port(), free_port()
    settings = [*PET, "http.enabled=true", f"http.port={page_port}", f"http.token={TOKEN}", "mqtt.enabled=true",
                "mqtt.host=127.0.0.1", f"mqtt.port={broker.port}", "mqtt.stats_interval_s=0.3",
                "camera.reconnect.initial_delay_s=0.1", "camera.reconnect.max_delay_s=0.3"]
    with subscribed(broker.port) as mqtt:
        app = subprocess.Popen(
            [sys.executable, "-m", "app", "--debug", "--source", camera_url(camera_port),
             *[arg for override in settings for arg in ("--set", override)]],
            cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            def stats() -> dict | None:
                status, body = get(page_port, "/api/stats", TOKEN)
                document = json.loads(body) if status == 200 else None
                return document if document and document["health"]["source"]["attempts"] >= 3 else None

            api_stats = wait_for(stats, "three failed attempts to open the camera, in /api/stats", 60)
            healthz = get(page_port, "/healthz")  # no token: anyone may ask
            metrics = get(page_port, "/metrics", TOKEN)
            wait_for(lambda: len(mqtt.topics("smartcam/cam0/detect/stats")) >= 2, "MQTT stats, twice", 30)
        finally:
            app.terminate()
            _, log = app.communicate(timeout=30)
        published = [(m.topic, bytes(m.payload).decode(errors="replace")) for m in mqtt.messages]
    assert app.returncode == 0, log

    status, reason = healthz
    assert status == 503 and reason.startswith("source reconnecting: ") and "failed attempts in" in reason, reason
    for address in ("127.0.0.1", str(camera_port), "videostream", "admin", "***", "http"):
        assert address not in reason, (address, reason)

    assert api_stats["source_description"] == shown(camera_port)
    assert "cannot open " + shown(camera_port) in api_stats["health"]["source"]["last_error"]
    assert metrics[0] == 200 and f'source_description="{shown(camera_port)}"' in metrics[1]
    stats_messages = [payload for topic, payload in published if topic == "smartcam/cam0/detect/stats"]
    assert json.loads(stats_messages[-1])["source_description"] == shown(camera_port)
    assert log.count(shown(camera_port)) >= 3, log  # opened, said down, each attempt (debug)

    assert leaked(json.dumps(api_stats)) == []
    assert leaked(metrics[1]) == []
    assert [(topic, leaked(payload)) for topic, payload in published if leaked(topic + payload)] == []
    assert leaked(log) == [], log


# --- where the text is made --------------------------------------------------------------------------------------


def test_a_stream_source_describes_itself_masked_and_says_so_when_it_cannot_open():
    port = free_port()
    source = StreamSource(CameraConfig(source=camera_url(port)), camera_url(port))
    assert source.target == camera_url(port) and source.description == shown(port)
    with pytest.raises(SourceError) as error:
        source.open()
    assert str(error.value).startswith(f"cannot open {shown(port)}") and leaked(str(error.value)) == []


class Refusing(Source):
    """A source whose description and errors carry the raw URL, as another kind of source might."""

    def __init__(self, url: str) -> None:
        self.description = url
        self.url = url

    def open(self) -> None:
        raise OSError(f"cannot connect to {self.url}: connection refused")

    def read(self) -> Captured:
        raise OSError(f"{self.url}: no frame")

    def close(self) -> None:
        pass


class StopOnSecondWait(threading.Event):
    """A stop event whose first wait returns at once and whose second stops: two attempts, no sleeping."""

    waited = False

    def wait(self, timeout: float | None = None) -> bool:
        if self.waited:
            self.set()
        self.waited = True
        return self.is_set()


def test_the_source_health_and_log_mask_what_the_error_echoes(caplog):
    source = Reconnecting(Refusing(camera_url(9)), ReconnectConfig(), StopOnSecondWait())
    with caplog.at_level(logging.DEBUG):
        source.open()  # the first attempt: a warning
        with pytest.raises(EndOfStream):
            source.read()  # the second: debug; then stopped
    assert source.health.attempts == 2
    assert source.health.last_error == f"cannot connect to {shown(9)}: connection refused"
    assert source.description == shown(9)
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 2 and all(shown(9) in line and leaked(line) == [] for line in said), said


def test_a_webhook_error_that_echoes_its_path_and_query_is_masked(caplog):
    url = f"http://127.0.0.1:9/hook?token={SECRETS[2]}\x01&sig={SECRETS[1]}"  # http.client quotes path and query
    sender = Sender(url, "urls[0] (127.0.0.1)", WebhooksConfig(enabled=True, urls=[url], retries=0), Stats())
    with caplog.at_level(logging.WARNING):
        sender.put(b"{}")
        sender.stop(time.monotonic() + 10)
    (line,) = [record.getMessage() for record in caplog.records if "failed" in record.getMessage()]
    assert "control characters" in line and "token=***" in line and leaked(line) == [], line


# --- the world-readable warning ------------------------------------------------------------------------------------


def test_a_credential_in_a_camera_or_webhook_url_in_a_world_readable_file_is_a_warning(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "camera": {"source": "rtsp://admin:S3cretUser@cam.local/stream"},
        "webhooks": {"urls": ["http://ha.local:8123/api/webhook/x",
                              "https://hooks.example/in?user=me&token=S3cretTok"]}}))
    config.chmod(0o644)
    (warning,) = load_device(config).warnings
    assert f"{config}: camera.source, webhooks.urls[1] written in a file every user can read (mode 644)" in warning
    assert "rtsp://user:${CAMERA_PASSWORD}@host/" in warning and leaked(warning) == []
    config.chmod(0o640)
    assert load_device(config).warnings == ()


def test_every_camera_url_with_a_written_out_credential_is_named(tmp_path):
    config = tmp_path / "config.yaml"
    config.touch(0o604)
    raw = {"cameras": [{"name": "door", "source": "http://cam1/video.cgi?user=admin&pwd=S3cretQuery"},
                       {"name": "yard", "source": "rtsp://admin:${YARD_PASSWORD}@cam2/s"},
                       {"name": "shed", "source": "http://cam3/video.cgi?user=admin&pwd=${cred:shed}"},
                       {"name": "gate", "source": "https://T0kenAsUser@cam4/live"},
                       {"name": "usb", "source": "/dev/video0"}],
           "mqtt": {"username": "smartcam", "tls": {"key": "/etc/smartcam/client.key"}}}
    (warning,) = secret_warnings(config, raw)
    assert warning.startswith(f"{config}: cameras[0].source, cameras[3].source written in a file"), warning
    assert leaked(warning) == [] and "T0kenAsUser" not in warning


def test_urls_without_a_written_out_credential_are_no_warning(tmp_path):
    config = tmp_path / "config.yaml"
    config.touch(0o644)
    raw = {"camera": {"source": "rtsp://admin:${CAMERA_PASSWORD}@cam.local/stream?user=admin"},
           "webhooks": {"urls": ["https://hooks.example/in?channel=1"]},
           "mqtt": {"username": "smartcam", "password": "${MQTT_PASSWORD}"}}
    assert secret_warnings(config, raw) == []


@pytest.mark.parametrize("override", ['webhooks.urls=["ftp://admin:S3cretUser@cam/x?token=S3cretTok"]',
                                      "camera.width=http://admin:S3cretUser@cam/x?token=S3cretTok"])
def test_a_url_refused_by_validation_is_shown_masked(override):
    with pytest.raises(ConfigError) as refused:
        load_device(None, ["webhooks.enabled=true", override])
    assert "***@cam/x?token=***" in str(refused.value) and "S3cret" not in str(refused.value)


def test_a_failed_camera_is_reported_with_its_url_masked(caplog):
    """A camera's failure goes to the log and its Stats (STATUS, /api/stats, MQTT stats) with the URL masked."""
    class Failing(Collector):
        def publish(self, out) -> None:
            raise OSError("cannot reach rtsp://admin:S3cretUser@cam/live?token=S3cretTok")

    cameras = Cameras([load_settings("detect", None, [*PET, "camera.source=pattern"])], lambda settings: [Failing()])
    with pytest.raises(OSError):
        cameras.run(max_frames=5)
    assert cameras.stats[0].last_failure == "cannot reach rtsp://***@cam/live?token=***"
    assert "S3cret" not in caplog.text and "rtsp://***@cam/live?token=***" in caplog.text
