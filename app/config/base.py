"""What every config section shares: the strict base model (an unknown key is an error), the rule for names that
become topics, ids and file names, the bounds of a capture, and the accelerator and port forms."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Base of every config section: unknown keys are errors. Patterns are checked with Python's `re`: each one
    pydantic's Rust regex engine compiles costs about 2 MB of memory for the life of the process."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, regex_engine="python-re")


#: names that become MQTT topic levels, Home Assistant ids and file names: short, and no separators or wildcards
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$"
NAME_RULE = "1 to 64 letters, digits, spaces, _ . or -, starting with a letter or digit"
#: the largest capture a camera gives (a 64 MP sensor is 9152 x 6944) and the fastest (high-speed modes; the
#: pattern source uses it as "unpaced")
MAX_SIDE = 10_000
MAX_FPS = 1000.0
ACCELERATOR_PATTERN = r"^(auto|cpu|edgetpu(:usb(:\d+)?|:pci(:\d+)?)?)$"


def checked_name(value: str, what: str) -> str:
    """`value` if it is a name by NAME_RULE; a ValueError saying the rule otherwise."""
    if not re.fullmatch(NAME_PATTERN, value):
        raise ValueError(f"not a {what}: {NAME_RULE}")
    return value


def port_number(text: str, form: str) -> int:
    """`text` as a port, 1-65535; a ValueError naming the form otherwise (99999 would wrap around to 34463)."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"port {text!r} is not a number from 1 to 65535 ({form})")
    return int(text)
