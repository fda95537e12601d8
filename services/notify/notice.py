"""A notice to the principal: what it is about, who it goes to, and what it says."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.utils import parseaddr
from typing import get_args

from streams.records import NoticePurpose

Purpose = NoticePurpose
PURPOSES: tuple[Purpose, ...] = get_args(Purpose)


@dataclass(frozen=True)
class Notice:
    """One notice. Its ``id`` is stable, so sending it twice is recognisable.

    ``recipient`` is None when the request carries no e-mail address: the notice is
    still kept (in the outbox), addressed to nobody. ``facts`` are what the audit trail
    records beside the id: dates and codes, never personal data.
    """

    request_id: str
    purpose: Purpose
    revision: int
    recipient: str | None
    subject: str
    body: str
    #: When the ledger recorded what the notice tells; the message's Date.
    at: datetime
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return notice_id(self.request_id, self.purpose, self.revision)


def notice_id(request_id: str, purpose: Purpose, revision: int) -> str:
    return f"{request_id}:{purpose}:{revision}"


def email_address(address: str | None) -> str | None:
    """``address`` if it is one e-mail address; None for a postal address or nothing."""
    if not address:
        return None
    _, addr = parseaddr(address)
    if not addr or addr != address.strip() or addr.count("@") != 1:
        return None
    try:
        Address(addr_spec=addr)
    except (ValueError, IndexError):
        return None
    return addr
