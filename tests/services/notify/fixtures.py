"""A real SMTP server on a loopback port (aiosmtpd), whose answers a test can script."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller

from services.broker import free_port


@dataclass
class Mailbox:
    """What the server received, and the replies it gives to the next DATA commands
    (``250 OK`` once the script runs out)."""

    replies: list[str] = field(default_factory=list)
    received: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    attempts: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.attempts += 1
        reply = self.replies.pop(0) if self.replies else "250 OK"
        if reply.startswith("250"):
            message = cast(
                EmailMessage, message_from_bytes(envelope.content, policy=policy.default)
            )
            self.received.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return reply


@dataclass
class SMTPServer:
    host: str
    port: int
    mailbox: Mailbox

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SMTPServer("127.0.0.1", controller.port, mailbox)
    finally:
        controller.stop()
