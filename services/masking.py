"""Secrets hidden in anything printed or logged: URL passwords, authorization headers,
credentials in query strings and key=value pairs.

``mask`` rewrites a whole text (a log line, an error message); ``mask_url`` one URL.
``configure_logging`` masks every log record, the pipeline's and its libraries'.
"""

from __future__ import annotations

import re

__all__ = ["HIDDEN", "mask", "mask_url"]

HIDDEN = "***"

#: ``scheme://user:password@``: the password goes.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s\"']*:)[^@/\s\"']+@")
#: ``Authorization: Bearer xyz``, ``"authorization": "Basic xyz"``: the credentials go.
_AUTH = re.compile(
    r"(?i)(?P<head>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?:basic|bearer|token|digest|aws4-hmac-sha256)\s+)?)[^\s\"',}]+"
)
#: ``password=...``, ``aws_secret_access_key: ...``, ``X-Amz-Signature=...``.
_PARAM = re.compile(
    r"(?i)(?P<head>\b(?:password|passwd|pwd|secret|secret_key|client_secret|token|"
    r"access_token|api[_-]?key|aws_secret_access_key|aws_session_token|x-amz-signature|"
    r"x-amz-security-token|x-amz-credential)[\"']?\s*[:=]\s*[\"']?)[^\s&\"',;}]+"
)


#: What every pattern above needs in a text, lower-cased: a text with none of these
#: shows no secret. (Each is ASCII; so, for an ASCII text, lower-casing it finds
#: what the patterns' ``(?i)`` finds.)
_CUES = (
    "://",
    "authorization",
    "passw",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "x-amz",
)


def mask(text: str) -> str:
    """``text`` with every secret it shows replaced by ``HIDDEN``."""
    if text.isascii():  # a log line, mostly: two fast passes rule out most of them
        lowered = text.lower()
        if not any(cue in lowered for cue in _CUES):
            return text
    return _masked(text)


def _masked(text: str) -> str:
    for pattern in (_USERINFO, _AUTH, _PARAM):
        text = pattern.sub(lambda m: m["head"] + HIDDEN + ("@" if m.re is _USERINFO else ""), text)
    return text


def mask_url(url: str) -> str:
    """``url`` with its password (and any credential in its query) hidden."""
    return mask(url)
