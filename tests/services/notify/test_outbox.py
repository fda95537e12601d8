"""The default notifier: one RFC 5322 file per notice id, written once."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

from services.notify import Notice, OutboxNotifier, email_address

AT = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)


def notice(recipient: str | None = "taro@example.jp", body: str = "本文 / Body\n") -> Notice:
    return Notice(
        request_id="req-1",
        purpose="response",
        revision=1,
        recipient=recipient,
        subject="開示請求に対する回答 / Response to your disclosure request (req-1)",
        body=body,
        at=AT,
    )


def test_a_notice_is_written_as_an_rfc_5322_message(tmp_path: Path) -> None:
    outbox = OutboxNotifier(tmp_path / "outbox", sender="privacy@example.co.jp")
    receipt = outbox.send(notice())
    path = tmp_path / "outbox" / "req-1" / "req-1:response:1.eml"
    assert receipt.channel == "outbox" and receipt.addressed
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["To"] == "taro@example.jp"
    assert message["From"] == "privacy@example.co.jp"
    assert message["Message-ID"] == "<req-1/response/1@example.co.jp>"
    assert message["Subject"].startswith("開示請求に対する回答")
    assert message.get_content().splitlines() == ["本文 / Body"]  # CRLF on the wire
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_the_same_notice_is_written_once(tmp_path: Path) -> None:
    outbox = OutboxNotifier(tmp_path, sender="privacy@example.co.jp")
    outbox.send(notice())
    first = outbox.path(notice()).read_bytes()
    outbox.send(notice(body="changed\n"))  # same id: the outbox keeps what it has
    assert outbox.path(notice()).read_bytes() == first
    assert len(list((tmp_path / "req-1").iterdir())) == 1


def test_without_an_email_address_the_notice_is_kept_addressed_to_nobody(tmp_path: Path) -> None:
    outbox = OutboxNotifier(tmp_path, sender="privacy@example.co.jp")
    receipt = outbox.send(notice(recipient=None))
    assert not receipt.addressed
    message = message_from_bytes(outbox.path(notice()).read_bytes(), policy=policy.default)
    assert message["To"] is None
    assert message["X-DSR-Recipient"].startswith("none: no e-mail address on file")


def test_only_an_email_address_is_a_recipient() -> None:
    assert email_address("taro@example.jp") == "taro@example.jp"
    assert email_address("大阪府大阪市2-2") is None  # a postal address for a letter
    assert email_address(None) is None
    assert email_address("a@b@c") is None
