"""The SMTP notifier against a real SMTP server on a loopback port."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.broker import free_port
from services.notify import (
    NotifyConfigError,
    NotifyFatal,
    NotifyRetriable,
    OutboxNotifier,
    SMTPConfig,
    SMTPNotifier,
    from_settings,
)
from services.settings import Settings
from tests.services.notify.fixtures import SMTPServer
from tests.services.notify.test_outbox import notice


def notifier(server: SMTPServer, tmp_path: Path, attempts: int = 3) -> SMTPNotifier:
    archive = OutboxNotifier(tmp_path / "outbox", sender="privacy@example.co.jp")
    return SMTPNotifier(
        SMTPConfig.from_url(server.url), archive, attempts=attempts, backoff_s=0.01, max_wait_s=0.05
    )


def test_a_notice_is_delivered_with_its_message_id(smtp_server: SMTPServer, tmp_path: Path) -> None:
    receipt = notifier(smtp_server, tmp_path).send(notice())
    assert receipt.channel == "smtp" and receipt.addressed
    [(mail_from, rcpt_tos, message)] = smtp_server.mailbox.received
    assert mail_from == "privacy@example.co.jp" and rcpt_tos == ["taro@example.jp"]
    assert message["Message-ID"] == "<req-1/response/1@example.co.jp>"
    assert message["X-DSR-Notice"] == "req-1:response:1"
    assert message.get_content().splitlines() == ["本文 / Body"]  # CRLF on the wire
    assert (tmp_path / "outbox" / "req-1" / "req-1:response:1.eml").exists()  # kept too


def test_a_transient_4xx_is_retried(smtp_server: SMTPServer, tmp_path: Path) -> None:
    smtp_server.mailbox.replies = ["451 4.3.0 Try again later"]
    notifier(smtp_server, tmp_path).send(notice())
    assert smtp_server.mailbox.attempts == 2
    assert len(smtp_server.mailbox.received) == 1


def test_a_5xx_is_fatal_and_not_retried(smtp_server: SMTPServer, tmp_path: Path) -> None:
    smtp_server.mailbox.replies = ["554 5.7.1 Rejected taro@example.jp"]
    with pytest.raises(NotifyFatal) as caught:
        notifier(smtp_server, tmp_path).send(notice())
    assert caught.value.smtp_code == 554
    assert "taro@example.jp" not in str(caught.value)  # the server's text is never echoed
    assert smtp_server.mailbox.attempts == 1


def test_a_notice_without_an_address_stays_in_the_outbox(
    smtp_server: SMTPServer, tmp_path: Path
) -> None:
    receipt = notifier(smtp_server, tmp_path).send(notice(recipient=None))
    assert receipt.channel == "outbox" and not receipt.addressed
    assert smtp_server.mailbox.attempts == 0
    assert (tmp_path / "outbox" / "req-1" / "req-1:response:1.eml").exists()


def test_an_unreachable_server_is_retried_then_raised(tmp_path: Path) -> None:
    server = SMTPServer("127.0.0.1", free_port(), mailbox=None)  # type: ignore[arg-type]
    with pytest.raises(NotifyRetriable):
        notifier(server, tmp_path, attempts=2).send(notice())


def test_the_smtp_url_and_notifier_settings() -> None:
    config = SMTPConfig.from_url("smtp+tls://ops%40corp:s3cret@mail.example.jp")
    assert (config.host, config.port, config.security) == ("mail.example.jp", 587, "starttls")
    assert config.username == "ops@corp" and "s3cret" not in repr(config)
    assert SMTPConfig.from_url("smtps://mail.example.jp").port == 465
    with pytest.raises(NotifyConfigError):
        SMTPConfig.from_url("http://mail.example.jp")
    with pytest.raises(NotifyConfigError):
        from_settings(Settings(notifier="smtp", smtp_url=None))
    assert isinstance(from_settings(Settings(notifier="outbox")), OutboxNotifier)
    assert "s3cret" not in repr(Settings(smtp_url="smtp://u:s3cret@h"))
