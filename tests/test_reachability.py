"""Why a broker cannot be reached, named: a name that does not resolve, a port where nothing listens, a plain port
spoken to in TLS, a certificate from another CA, a client certificate the broker requires. Checked against real
mosquitto listeners (tests/test_mqtt.py checks that a publisher's one warning says it)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.outputs.mqtt import client_tls_context
from app.outputs.reachability import why_unreachable
from conftest import Broker, free_port, make_certificates


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict[str, Path]:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_broker(tmp_path, certificates, request) -> Iterator[Broker]:
    """mosquitto with a TLS listener; `require_certificate` when the test is parametrized with it."""
    extra = "require_certificate true\n" if getattr(request, "param", False) else ""
    broker = Broker(tmp_path, free_port(), f"allow_anonymous true\ncafile {certificates['ca']}\n"
                                           f"certfile {certificates['server']}\nkeyfile {certificates['server_key']}\n"
                                           f"{extra}")
    broker.start()
    yield broker
    broker.kill()


def trusting(ca: Path | None) -> ssl.SSLContext:
    """The MQTT publisher's client context trusting `ca`, or the system's CAs."""
    return client_tls_context(str(ca) if ca else None, None, None, insecure=False)


def test_a_name_that_does_not_resolve_is_said():
    assert why_unreachable("broker.invalid", 8883, None).startswith("broker.invalid does not resolve")


def test_a_port_where_nothing_listens_is_said():
    port = free_port()
    assert why_unreachable("127.0.0.1", port, None) == (f"nothing listens on port {port} of 127.0.0.1 (connection "
                                                        "refused: is the broker running?)")


def test_a_plain_port_spoken_to_in_tls_is_said(broker, certificates):
    assert why_unreachable("127.0.0.1", broker.port, trusting(certificates["ca"])) == \
        "the broker hung up on the TLS handshake (is it a plain MQTT port? 1883 is plain, 8883 TLS)"


def test_a_certificate_from_another_ca_is_said_and_the_right_ca_gets_through(tls_broker, certificates):
    untrusted = why_unreachable("127.0.0.1", tls_broker.port, trusting(None))  # the system's CAs only
    assert untrusted.startswith("its TLS certificate is not trusted: ") and "mqtt.tls.ca must be" in untrusted, \
        untrusted
    assert why_unreachable("127.0.0.1", tls_broker.port, trusting(certificates["ca"])).startswith("reachable now")


@pytest.mark.parametrize("tls_broker", [True], indirect=True)
def test_a_client_certificate_the_broker_requires_is_said(tls_broker, certificates):
    assert why_unreachable("127.0.0.1", tls_broker.port, trusting(certificates["ca"])) == \
        "the broker requires a client certificate (set mqtt.tls.cert and key)"
