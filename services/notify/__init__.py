"""Notices to the principal, and the notifiers that send them.

Every decision on a request is told to the principal: the response, including "no
data found" (APPI Arts. 32(3), 33(3), 34(3), 35(7), with the reasons of Art. 36),
a deadline extension, a hold (what is needed), and, under the CCPA, the
acknowledgement of receipt. ``compose`` builds a ``Notice``; a ``Notifier`` sends it:

- ``OutboxNotifier`` (the default, ``DSR_NOTIFIER=outbox``) writes an RFC 5322
  message to ``<DSR_HOME>/outbox/<request_id>/<notice id>.eml``;
- ``SMTPNotifier`` (``DSR_NOTIFIER=smtp``, ``DSR_SMTP_URL``) e-mails it, and keeps
  the outbox copy too.

Errors are drawn in ``services.notify.errors``. Addresses and identifiers are personal
data: nothing here logs them.
"""

from __future__ import annotations

from services.notify.base import Notifier, Receipt
from services.notify.errors import NotifyConfigError, NotifyError, NotifyFatal, NotifyRetriable
from services.notify.message import message_id, render
from services.notify.notice import PURPOSES, Notice, Purpose, email_address, notice_id
from services.notify.outbox import OutboxNotifier
from services.notify.smtp import SMTPConfig, SMTPNotifier
from services.settings import Settings


def from_settings(settings: Settings) -> Notifier:
    """The notifier ``DSR_NOTIFIER`` names; ``NotifyConfigError`` when it cannot be built."""
    outbox = OutboxNotifier(settings.home / "outbox", sender=settings.notice_from)
    if settings.notifier == "outbox":
        return outbox
    if settings.notifier == "smtp":
        if not settings.smtp_url:
            raise NotifyConfigError("DSR_NOTIFIER=smtp needs DSR_SMTP_URL")
        return SMTPNotifier(SMTPConfig.from_url(settings.smtp_url), archive=outbox)
    raise NotifyConfigError(f"DSR_NOTIFIER must be outbox or smtp, not {settings.notifier!r}")


__all__ = [
    "PURPOSES",
    "Notice",
    "Notifier",
    "NotifyConfigError",
    "NotifyError",
    "NotifyFatal",
    "NotifyRetriable",
    "OutboxNotifier",
    "Purpose",
    "Receipt",
    "SMTPConfig",
    "SMTPNotifier",
    "email_address",
    "from_settings",
    "message_id",
    "notice_id",
    "render",
]
