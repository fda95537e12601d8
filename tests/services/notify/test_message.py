"""A notice as an RFC 5322 message: the header classes made once give the same bytes as
the standard library's own ``policy.SMTP``."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from unittest.mock import patch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notify import Notice, message

SENDER = "プライバシー窓口 <privacy@example.co.jp>"


def notice(recipient: str | None, subject: str, body: str) -> Notice:
    return Notice(
        request_id="req-1",
        purpose="response",
        revision=2,
        recipient=recipient,
        subject=subject,
        body=body,
        at=datetime(2026, 4, 1, 9, 30, tzinfo=UTC),
    )


def stock(n: Notice) -> bytes:
    """``n`` rendered with ``policy.SMTP`` as the standard library has it."""
    with patch.object(message, "_POLICY", policy.SMTP):
        return message.render(n, SENDER).as_bytes()


_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=120)


@given(
    st.sampled_from([None, "taro@example.jp", "山田 太郎 <taro.yamada@example.jp>"]),
    _TEXT,
    st.text(max_size=400),
)
def test_a_notice_is_rendered_as_the_standard_library_renders_it(
    recipient: str | None, subject: str, body: str
) -> None:
    n = notice(recipient, subject, body)
    assert message.render(n, SENDER).as_bytes() == stock(n)


@pytest.mark.parametrize("subject", ["回答\r\nBcc: mallory@example.com", "a\nb"])
def test_a_linefeed_in_a_header_is_refused(subject: str) -> None:
    with pytest.raises(ValueError, match="linefeed"):
        message.render(notice("taro@example.jp", subject, "本文\n"), SENDER).as_bytes()
