"""`${VAR}`, `${VAR:-default}` and `${cred:NAME}` (a systemd credential) in config files, replaced before
validation; and the warning for a secret written out in a file other users can read, where a reference belongs."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from app.config.problems import Problems
from app.redact import url_secrets

#: ${VAR}, ${VAR:-default}, and ${cred:NAME}: a systemd credential (LoadCredential=NAME:FILE in the unit)
_REFERENCE = re.compile(r"\$\{(?:cred:([\w.-]+)|(\w+)(?::-([^}]*))?)\}")
#: config.yaml keys that hold secrets: a literal one in a file others can read is a warning
SECRET_KEYS = ("mqtt.password", "http.token", "http.password")
#: config.yaml keys holding URLs, whose credentials (app/redact.py `url_secrets`) are secrets too; `[]`: each item
SECRET_URL_KEYS = ("camera.source", "cameras[].source", "webhooks.urls[]")



def substitute_env(value: Any, path: str, where: str, problems: Problems) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string, recursively."""
    if isinstance(value, dict):
        return {k: substitute_env(v, f"{path}.{k}" if path else str(k), where, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, f"{path}[{i}]", where, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        credential, name, default = match.groups()
        if credential:
            return _credential(credential, path, where, problems)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.add(where, path, f"environment variable {name} is not set (set it, or write ${{{name}:-default}})")
        return ""

    return _REFERENCE.sub(replace, value)


def _credential(name: str, path: str, where: str, problems: Problems) -> str:
    """The systemd credential `name` ($CREDENTIALS_DIRECTORY/name), without its final newline."""
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        problems.add(where, path, f"${{cred:{name}}}: no credentials here ($CREDENTIALS_DIRECTORY is not set; the "
                     f"unit's LoadCredential={name}:FILE provides it)")
        return ""
    try:
        return (Path(folder) / name).read_text(encoding="utf-8").rstrip("\n")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(where, path, f"${{cred:{name}}}: cannot read {Path(folder) / name} ({exc})")
        return ""


def secret_warnings(config_path: Path, raw: dict) -> list[str]:
    """A warning naming each key (never its value) that holds a secret written literally, not as a ${…} reference,
    in a config file that other users can read: SECRET_KEYS, and the URLs of SECRET_URL_KEYS that carry a password,
    token or key."""
    urls = [where for key in SECRET_URL_KEYS for where, value in _values_at(raw, key)
            if isinstance(value, str) and any(_written_out(secret) for secret in url_secrets(value))]
    literal = [where for key in SECRET_KEYS for where, value in _values_at(raw, key) if _written_out(value)] + urls
    try:
        mode = config_path.stat().st_mode
    except OSError:
        return []
    if not literal or not mode & 0o004:
        return []
    in_url = "; in a URL, only its credential: rtsp://user:${CAMERA_PASSWORD}@host/…" if urls else ""
    return [f"{config_path}: {', '.join(literal)} written in a file every user can read (mode {mode & 0o777:o}): "
            f"chmod o-r {config_path}, or move the secret to the environment (${{VAR}}, with the unit's "
            f"EnvironmentFile=) or to a systemd credential (${{cred:NAME}}, with LoadCredential=NAME:FILE){in_url}"]


def _written_out(value: object) -> bool:
    """A secret given as itself, not as a ${VAR} or ${cred:NAME} reference."""
    return isinstance(value, str) and bool(value) and "${" not in value


def _values_at(raw: object, key: str) -> list[tuple[str, object]]:
    """What config.yaml as written holds at `key`, each with its path: `cameras[].source` gives every camera's
    (`cameras[0].source`, ...); a key not there gives nothing or None."""
    found: list[tuple[str, object]] = [("", raw)]
    for part in key.split("."):
        name, each = part.removesuffix("[]"), part.endswith("[]")
        deeper: list[tuple[str, object]] = []
        for path, node in found:
            value, where = node.get(name) if isinstance(node, dict) else None, f"{path}.{name}" if path else name
            if not each:
                deeper.append((where, value))
            elif isinstance(value, list):
                deeper += [(f"{where}[{i}]", item) for i, item in enumerate(value)]
        found = deeper
    return found
