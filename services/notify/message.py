"""A notice as an RFC 5322 message."""

from __future__ import annotations

import re
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import lru_cache
from typing import Any

from services.notify.notice import Notice

#: The domain of Message-IDs when the sender address has none, or none that is a domain.
FALLBACK_DOMAIN = "dsr-pipeline.invalid"
#: A domain name's labels (letters, digits, inner hyphens), dot-separated.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
UNADDRESSED = "none: no e-mail address on file; the notice is kept for delivery by other means"

#: A value that folds to itself: printable ASCII words one space apart, no encoded word.
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "sender", "reply-to"})


class _Headers(HeaderRegistry):
    """The standard header classes, each made once. (``HeaderRegistry`` makes a new
    class for every header it parses, which was half the cost of a notice.)"""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        if key not in self._made:
            self._made[key] = super().__getitem__(name)
        return self._made[key]


class _Folded(str):
    """A header's value as given, with its field name and the line the standard library
    folds the two into. (Not ``name``: the library takes a value with one for a header
    object.)"""

    field: str
    line: str


class _Policy(policy.EmailPolicy):
    """``policy.SMTP`` (CRLF line ends, RFC 5322 headers, linefeeds refused in values)
    that folds each header as the standard library does, at a fraction of the cost:
    a plain value (printable ASCII words, on one line) folds to itself, and the folded
    line of any other is kept for the next message that sets the same header to the same
    value (the sender, the content headers). Parsing a value into a header object and
    folding it took about a millisecond a notice."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if not isinstance(value, str) or hasattr(value, "name"):
            return super().header_store_parse(name, value)
        if (
            name.lower() not in _ADDRESS_HEADERS
            and len(name) + 2 + len(value) <= (self.max_line_length or 0)
            and "=?" not in value
            and _PLAIN.fullmatch(value)
        ):
            return name, value
        return name, _folded(name, value)

    def header_fetch_parse(self, name: str, value: Any) -> Any:
        if isinstance(value, str) and not hasattr(value, "name"):
            return _parsed(name, str(value))
        return super().header_fetch_parse(name, value)

    def fold(self, name: str, value: Any) -> str:
        if isinstance(value, _Folded):
            return value.line if self._folds_as_stored() else super().fold(name, _header(value))
        return super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        if isinstance(value, _Folded):
            if self._folds_as_stored():
                return value.line.encode("ascii", "surrogateescape")
            value = _header(value)
        return super().fold_binary(name, value)

    def _folds_as_stored(self) -> bool:
        """Whether this policy folds as the one the lines were kept for: not so a clone
        that allows UTF-8 headers (``smtplib`` makes one for an SMTPUTF8 address)."""
        kept = (_POLICY.utf8, _POLICY.linesep, _POLICY.max_line_length)
        return (self.utf8, self.linesep, self.max_line_length) == kept


_POLICY = _Policy(linesep="\r\n", header_factory=_Headers())


@lru_cache(maxsize=1024)
def _parsed(name: str, value: str) -> BaseHeader:
    """The header object a stored ``value`` reads as (each read parsed it again)."""
    return policy.EmailPolicy.header_fetch_parse(_POLICY, name, value)


@lru_cache(maxsize=1024)
def _folded(name: str, value: str) -> _Folded:
    """``value`` with its folded line, as the standard library makes it (which refuses a
    linefeed in it)."""
    _, header = policy.EmailPolicy.header_store_parse(_POLICY, name, value)
    folded = _Folded(value)
    folded.field, folded.line = name, header.fold(policy=_POLICY)
    return folded


def _header(value: _Folded) -> BaseHeader:
    return _parsed(value.field, str(value))


def message_id(notice_id: str, sender: str) -> str:
    """A Message-ID derived from the notice id alone, so a re-send carries the same one.

    ``:`` is not allowed on the left of a Message-ID and ``/`` never occurs in a request
    id, so swapping one for the other keeps ids distinct."""
    return f"<{notice_id.replace(':', '/')}@{_domain(sender)}>"


@lru_cache(maxsize=64)
def _domain(sender: str) -> str:
    """The sender address's domain; a malformed address (``" <a@b.jp>``, whose quote
    the parser keeps, with the ``>``) gives none."""
    domain = parseaddr(sender)[1].rpartition("@")[2]
    return domain if _DOMAIN.fullmatch(domain) else FALLBACK_DOMAIN


def render(notice: Notice, sender: str) -> EmailMessage:
    msg = EmailMessage(policy=_POLICY)
    msg["Message-ID"] = message_id(notice.id, sender)
    msg["Date"] = format_datetime(notice.at)
    msg["From"] = sender
    if notice.recipient:
        msg["To"] = notice.recipient
    msg["Subject"] = notice.subject
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-DSR-Notice"] = notice.id
    if not notice.recipient:
        msg["X-DSR-Recipient"] = UNADDRESSED
    msg.set_content(notice.body)
    return msg
