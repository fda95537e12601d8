"""A notice as an RFC 5322 message."""

from __future__ import annotations

from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from services.notify.notice import Notice

#: The domain of Message-IDs when the sender address has none.
FALLBACK_DOMAIN = "dsr-pipeline.invalid"
UNADDRESSED = "none: no e-mail address on file; the notice is kept for delivery by other means"


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


#: ``policy.SMTP`` (CRLF line ends, RFC 5322 headers, linefeeds refused in values).
_POLICY = policy.SMTP.clone(header_factory=_Headers())


def message_id(notice_id: str, sender: str) -> str:
    """A Message-ID derived from the notice id alone, so a re-send carries the same one.

    ``:`` is not allowed on the left of a Message-ID and ``/`` never occurs in a request
    id, so swapping one for the other keeps ids distinct."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or FALLBACK_DOMAIN
    return f"<{notice_id.replace(':', '/')}@{domain}>"


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
