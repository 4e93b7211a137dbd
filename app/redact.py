"""What of a URL may be shown: the one rule for hiding the credentials a camera or webhook URL carries.

Owns masking them wherever a URL is shown (source descriptions, errors that echo the URL, logs, `/api/stats`,
`/metrics`, MQTT stats) and telling which parts of a URL are secrets (config.py's world-readable warning), so the
two agree on what a credential is. A URL is `scheme://` and every character up to the next space or quote, also
inside a longer text such as an exception message; anything else passes through unchanged.

- The userinfo, everything between `//` and the URL's last `@`, becomes `***`: `rtsp://***@cam.local/stream`.
  The last `@`, so a password with an unencoded `@`, `/`, `?` or `#` is hidden whole; a URL with an `@` in its
  path or query loses its host too, which hides more than needed, never less.
- A parameter (after `?`, `&`, `;` or `#`: query, path parameters and fragment alike) whose name, percent-decoded
  and in any case, contains one of CREDENTIAL_WORDS has its value replaced by `***`: `?user=***&pwd=***&channel=1`.
  The value runs to the next separator or space, so punctuation right after it in a sentence is masked with it.
  A name that merely contains such a word (`keyframe`, `author`) is masked too: hiding too much costs a less
  telling log line, hiding too little a password.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
#: parameter names containing one of these name a secret: a password, token, key or signature
SECRET_WORDS = ("pass", "pw", "token", "key", "auth", "sig", "secret", "cred", "session")
#: parameter names containing one of these name who logs in: masked when shown, but not secrets themselves
IDENTITY_WORDS = ("user", "usr", "login")
CREDENTIAL_WORDS = SECRET_WORDS + IDENTITY_WORDS

#: a scheme is at most 32 characters: each place in the text is tried briefly, so a long run of letters (a 3 MB
#: name given where a URL may be) is scanned in linear time, not quadratic
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s'\"<>`]+")
_PARAMETER = re.compile(r"([?&;#])([^=?&;#]*)=([^&;#]*)")


def mask_credentials(text: str) -> str:
    """`text` with the credentials of every URL in it masked (see the module docstring)."""
    return _URL.sub(lambda found: _masked_url(found.group()), text)


def url_secrets(text: str) -> list[str]:
    """The secrets written in the URLs in `text`, as written: the userinfo's password (the whole userinfo when it
    has no `:`, as a token given as the user name) and the values of parameters named by SECRET_WORDS. User names
    are not secrets."""
    secrets = []
    for url in _URL.findall(text):
        userinfo, at, rest = url.partition("://")[2].rpartition("@")
        if at:
            user, colon, password = userinfo.partition(":")
            secrets.append(password if colon else user)
        secrets += [value for _, name, value in _PARAMETER.findall(rest) if _names(name, SECRET_WORDS)]
    return [secret for secret in secrets if secret]


def mask_secrets(text: str, url: str) -> str:
    """`text` with the credentials of every URL in it masked, and the secrets `url` carries masked wherever else
    they appear (as written, percent-decoded or escaped as a Python repr): for an error about `url` that echoes only
    part of it, such as http.client's InvalidURL quoting the path and query."""
    forms = {form for secret in url_secrets(url) for form in (secret, unquote(secret), repr(secret)[1:-1])}
    masked = mask_credentials(text)
    for secret in sorted(forms, key=len, reverse=True):  # the longest first: no piece of one left by a shorter one
        masked = masked.replace(secret, MASK)
    return masked


def _masked_url(url: str) -> str:
    scheme, _, after_scheme = url.partition("://")
    _, at, rest = after_scheme.rpartition("@")
    return f"{scheme}://{MASK + at if at else ''}{_PARAMETER.sub(_masked_parameter, rest)}"


def _masked_parameter(found: re.Match[str]) -> str:
    separator, name, value = found.groups()
    return f"{separator}{name}={MASK}" if value and _names(name, CREDENTIAL_WORDS) else found.group()


def _names(name: str, words: tuple[str, ...]) -> bool:
    """Whether the parameter `name` contains one of `words`, percent-decoded and in any case."""
    decoded = unquote(name).lower()
    return any(word in decoded for word in words)
