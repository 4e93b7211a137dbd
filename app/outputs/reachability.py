"""Why a server cannot be reached: one look at it (resolve, connect, TLS handshake) that names the cause.

paho-mqtt reports a failed connection attempt without its reason (`on_connect_fail` has no error), so every
failure looked the same: "unreachable". A name that does not resolve, a port where nothing listens, a firewall,
a plain port spoken to in TLS, a certificate signed by another CA or made for another name, a client certificate
the broker requires: each needs a different fix, and this module says which, in words a user can act on.
"""

from __future__ import annotations

import contextlib
import socket
import ssl

#: how long one look may take; it runs off the camera's lanes, once per outage
PROBE_TIMEOUT_S = 5.0

#: how long to wait for the server's refusal of a client certificate after the handshake
ALERT_WAIT_S = 1.0

NOT_TLS = "is it a plain MQTT port? 1883 is plain, 8883 TLS"
#: OpenSSL reasons (ssl.SSLError.reason) and what they mean for a client
_TLS_REASONS = {
    "WRONG_VERSION_NUMBER": f"the port does not speak TLS ({NOT_TLS})",
    "RECORD_LAYER_FAILURE": f"the port does not speak TLS ({NOT_TLS})",
    "PACKET_LENGTH_TOO_LONG": f"the port does not speak TLS ({NOT_TLS})",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the broker requires a client certificate (set mqtt.tls.cert and key)",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the broker refused the handshake (does it require a client certificate? "
                                     "mqtt.tls.cert and key)",
    "TLSV1_ALERT_UNKNOWN_CA": "the broker does not trust the client certificate (mqtt.tls.cert)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the broker refused the client certificate (mqtt.tls.cert)",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the broker says the client certificate has expired (mqtt.tls.cert)",
}


def why_unreachable(host: str, port: int, context: ssl.SSLContext | None,
                    timeout: float = PROBE_TIMEOUT_S) -> str:
    """The reason a connection to `host`:`port` (in TLS with `context`) fails, as one phrase; or, when this look
    gets through, that it does now (the failure was passing, or lies beyond the handshake)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        return f"{host} does not resolve ({exc.strerror}; a typo, or DNS not up?)"
    except ConnectionRefusedError:
        return f"nothing listens on port {port} of {host} (connection refused: is the broker running?)"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g} s (the host down, or a firewall)"
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({exc.strerror or exc})"
    with sock:
        if context is None:
            return "reachable now (the connection failed only for a moment)"
        try:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                _read_alert(tls)
                return "reachable now, TLS included (the connection failed only for a moment)"
        except ssl.SSLCertVerificationError as exc:
            return (f"its TLS certificate is not trusted: {exc.verify_message} (mqtt.tls.ca must be the CA that "
                    "signed it, and the certificate made for the name in mqtt.host)")
        except (ssl.SSLEOFError, ConnectionResetError):  # a plain broker takes the ClientHello for a bad packet
            return f"the broker hung up on the TLS handshake ({NOT_TLS})"
        except ssl.SSLError as exc:
            return _TLS_REASONS.get(exc.reason or "", f"the TLS handshake failed ({exc.reason or exc})")
        except OSError as exc:
            return f"the TLS handshake failed ({exc.strerror or exc})"


def _read_alert(tls: ssl.SSLSocket) -> None:
    """In TLS 1.3 the server judges the client's certificate after the client's handshake is done: its refusal
    comes as an alert on the first read (raised here). A broker that waits for our CONNECT sends nothing."""
    tls.settimeout(ALERT_WAIT_S)
    with contextlib.suppress(TimeoutError):
        tls.recv(1)
