"""Notices by e-mail, through an SMTP server (``DSR_NOTIFIER=smtp``, ``DSR_SMTP_URL``).

``DSR_SMTP_URL`` is ``smtp://[user:password@]host[:port]`` (plain, port 25),
``smtp+tls://...`` (STARTTLS, port 587) or ``smtps://...`` (TLS from the start,
port 465). Every notice is also kept in the outbox, so a notice with no e-mail
address, or one the server refused, is never lost.

A reply in the 4xx range and a lost connection are retried with backoff; a 5xx
reply is fatal (``NotifyFatal``).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from services.notify.base import Receipt
from services.notify.errors import NotifyConfigError, NotifyFatal, NotifyRetriable
from services.notify.message import render
from services.notify.notice import Notice
from services.notify.outbox import OutboxNotifier

_SECURITY = {"smtp": "plain", "smtp+tls": "starttls", "smtps": "tls", "smtp+ssl": "tls"}
_PORTS = {"plain": 25, "starttls": 587, "tls": 465}


@dataclass(frozen=True)
class SMTPConfig:
    host: str
    port: int
    security: str  # plain | starttls | tls
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = 10.0

    @classmethod
    def from_url(cls, url: str) -> SMTPConfig:
        parts = urlsplit(url)
        security = _SECURITY.get(parts.scheme)
        if security is None or not parts.hostname:
            raise NotifyConfigError(
                "DSR_SMTP_URL must be smtp://, smtp+tls:// or smtps://[user:password@]host[:port]"
            )
        try:
            port = parts.port or _PORTS[security]
        except ValueError:
            raise NotifyConfigError("DSR_SMTP_URL has an invalid port") from None
        return cls(
            host=parts.hostname,
            port=port,
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=SecretStr(unquote(parts.password)) if parts.password else None,
        )


class SMTPNotifier:
    """Sends each addressed notice to its recipient; keeps every notice in ``archive``."""

    name = "smtp"

    def __init__(
        self,
        config: SMTPConfig,
        archive: OutboxNotifier,
        *,
        attempts: int = 5,
        backoff_s: float = 0.5,
        max_wait_s: float = 30.0,
    ) -> None:
        self.config = config
        self.archive = archive
        self.sender = archive.sender
        self._retrying = Retrying(
            retry=retry_if_exception_type(NotifyRetriable),
            stop=stop_after_attempt(attempts),
            wait=wait_random_exponential(multiplier=backoff_s, max=max_wait_s),
            reraise=True,
        )

    def send(self, notice: Notice) -> Receipt:
        message = render(notice, self.sender)  # once, for the archive and the server
        self.archive.keep(notice, message)
        if notice.recipient is None:
            return Receipt("outbox", addressed=False)
        for attempt in self._retrying.copy():
            with attempt:
                self._deliver(message, notice.recipient)
        return Receipt("smtp", addressed=True)

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        if c.security == "tls":
            context = ssl.create_default_context()
            return smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout_s, context=context)
        return smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)

    def _deliver(self, message: EmailMessage, recipient: str) -> None:
        c = self.config
        envelope_from = parseaddr(self.sender)[1] or self.sender
        try:
            with self._connect() as client:
                if c.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if c.username:
                    password = c.password.get_secret_value() if c.password else ""
                    client.login(c.username, password)
                client.send_message(message, from_addr=envelope_from, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise _by_code(min(codes) if codes else 550, "refused the recipient") from None
        except smtplib.SMTPResponseException as exc:
            raise _by_code(exc.smtp_code, "refused the message") from None
        except smtplib.SMTPServerDisconnected:
            raise NotifyRetriable("the SMTP server closed the connection") from None
        except smtplib.SMTPNotSupportedError:
            raise NotifyConfigError("the SMTP server does not support STARTTLS") from None
        except smtplib.SMTPException as exc:
            raise NotifyFatal(f"SMTP failed: {type(exc).__name__}") from None
        except OSError as exc:  # refused, unreachable, timed out, TLS handshake
            raise NotifyRetriable(f"cannot reach the SMTP server: {type(exc).__name__}") from None


def _by_code(code: int, what: str) -> NotifyRetriable | NotifyFatal:
    message = f"the SMTP server {what} ({code})"
    if 400 <= code < 500:
        return NotifyRetriable(message, code)
    return NotifyFatal(message, code)
