"""A notice as an RFC 5322 message: the header classes made once, the plain values kept
as they are and the folded lines kept for the next notice give the same bytes as the
standard library's own ``policy.SMTP``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.generator import BytesGenerator
from email.message import EmailMessage
from io import BytesIO
from unittest.mock import patch

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.notify import Notice, message
from services.settings import Settings

SENDER = "プライバシー窓口 <privacy@example.co.jp>"


def notice(recipient: str | None, subject: str, body: str, request_id: str = "req-1") -> Notice:
    return Notice(
        request_id=request_id,
        purpose="response",
        revision=2,
        recipient=recipient,
        subject=subject,
        body=body,
        at=datetime(2026, 4, 1, 9, 30, tzinfo=UTC),
    )


def stock(n: Notice, sender: str = SENDER) -> EmailMessage:
    """``n`` rendered with ``policy.SMTP`` as the standard library has it."""
    with patch.object(message, "_POLICY", policy.SMTP):
        return message.render(n, sender)


def utf8(msg: EmailMessage) -> bytes:
    """``msg`` as ``smtplib`` sends it to an SMTPUTF8 address: with UTF-8 headers."""
    out = BytesIO()
    BytesGenerator(out, policy=msg.policy.clone(utf8=True)).flatten(msg)
    return out.getvalue()


_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=120)
_NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
_RECIPIENTS = st.one_of(
    st.none(),
    st.sampled_from(["taro@example.jp", "山田 太郎 <taro.yamada@example.jp>"]),
    st.builds("{} <{}>".format, _NAMES, st.emails()),
)
_SENDERS = st.one_of(st.just(SENDER), st.builds("{} <{}>".format, _NAMES, st.emails()))
_REQUEST_IDS = st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True)


@given(_RECIPIENTS, _TEXT, st.text(max_size=400), _SENDERS, _REQUEST_IDS)
@example(None, "0", "", ". <0@A.AC>", "0")  # a display name the library's parser fails on
@example(None, "0", "", '" <0@A.cl>', "0")  # an open quote: the address parsed is not one
def test_a_notice_is_rendered_as_the_standard_library_renders_it(
    recipient: str | None, subject: str, body: str, sender: str, request_id: str
) -> None:
    n = notice(recipient, subject, body, request_id)
    made = outcome(lambda: stock(n, sender).as_bytes())
    for _ in range(2):  # the second time from the lines kept the first
        assert outcome(lambda: message.render(n, sender).as_bytes()) == made
        assert outcome(lambda: utf8(message.render(n, sender))) == outcome(
            lambda: utf8(stock(n, sender))
        )
        if isinstance(made, bytes):  # and its headers read back alike
            rendered, expected = message.render(n, sender), stock(n, sender)
            assert rendered["To"] == expected["To"] and rendered["Subject"] == expected["Subject"]


def outcome(make: Callable[[], bytes]) -> bytes | str:
    """What ``make`` gives, or the kind of error it raises (the standard library cannot
    encode some addresses, and its parser fails on some display names: then this must
    fail alike)."""
    try:
        return make()
    except Exception as exc:  # noqa: BLE001 - compared by kind
        return type(exc).__name__


@pytest.mark.parametrize("subject", ["回答\r\nBcc: mallory@example.com", "a\nb"])
def test_a_linefeed_in_a_header_is_refused(subject: str) -> None:
    with pytest.raises(ValueError, match="linefeed"):
        message.render(notice("taro@example.jp", subject, "本文\n"), SENDER).as_bytes()


@pytest.mark.parametrize(
    "subject",
    [
        # encoded words: decoded, then folded anew
        "=?utf-8?q?caf=C3=A9?= answered",
        "=?utf-8?q?a?= =?utf-8?q?b?=",
        "=?iso-8859-1?q?caf=E9?=",
        "a =?utf-8?q?b?=c",
        "two  spaces",
        "a space at the end ",
        "x" * 69,  # with "Subject: ", the longest line that is kept as it is
        "x" * 70,
        'a (comment) and "quotes"',
    ],
)
def test_a_plain_looking_subject_is_rendered_as_the_standard_library_renders_it(
    subject: str,
) -> None:
    n = notice("taro@example.jp", subject, "本文\n")
    assert message.render(n, SENDER).as_bytes() == stock(n).as_bytes()


@given(_SENDERS | st.text(max_size=60), _REQUEST_IDS)
@example(". <0@A.AC>", "0")
def test_every_sender_the_settings_accept_renders_every_notice(
    sender: str, request_id: str
) -> None:
    """What ``DSR_NOTICE_FROM`` lets through, a notice can be sent from."""
    try:
        accepted = Settings(notice_from=sender).notice_from
    except ValidationError:
        return
    n = notice("taro@example.jp", "ご請求について", "本文\n", request_id)
    read = message_from_bytes(message.render(n, accepted).as_bytes(), policy=policy.default)
    [address] = read["From"].addresses
    assert address.addr_spec == policy.default.header_factory("From", sender).addresses[0].addr_spec
