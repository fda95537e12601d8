"""Secrets are masked in printed URLs and in every log line."""

from __future__ import annotations

import io
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.logs import JsonFormatter, configure_logging
from services.masking import _masked, mask, mask_url

SECRET = "s3cret-Pa55"


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:5432/test",
        f"smtp+tls://mailer:{SECRET}@mail.example.jp:587",
        f"https://user:{SECRET}@api.example.jp/v1?x=1",
        f"Authorization: Bearer {SECRET}",
        f'{{"Authorization": "Basic {SECRET}"}}',
        f"aws_secret_access_key={SECRET} region=ap-northeast-1",
        f"https://bucket.s3.amazonaws.com/k?X-Amz-Signature={SECRET}&X-Amz-Date=1",
        f"password: {SECRET}",
    ],
)
def test_a_secret_is_masked_and_the_rest_kept(text: str) -> None:
    masked = mask(text)
    assert SECRET not in masked and "***" in masked
    assert masked.startswith(text.split(SECRET)[0])  # what names no secret stays


#: Pieces of lines that show a secret, or almost do, in any case.
_NAMES = (
    "password", "passwd", "pwd", "secret", "secret_key", "client_secret", "token",
    "access_token", "apikey", "api_key", "api-key", "aws_secret_access_key",
    "aws_session_token", "x-amz-signature", "x-amz-security-token", "x-amz-credential",
    "authorization", "proxy-authorization", "https://", "smtp+tls://", "postgresql://",
)  # fmt: skip
_NAME = st.sampled_from(_NAMES).flatmap(  # in any case
    lambda name: st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(name, upper, strict=True))
    )
)
_SEPARATOR = st.sampled_from(["=", ": ", '": "', "@", ":", "Bearer ", "basic ", " ", ""])
_FILLER = st.one_of(
    st.sampled_from(["", " ", "x", '{"', "?", "&", "u:p@h"]),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=6),
    st.text(max_size=3),  # and not only ASCII
)
_VALUE = st.text(alphabet="abcXYZ019-_:@/", min_size=1, max_size=6)
_LINE = st.tuples(_FILLER, _NAME, _SEPARATOR, _VALUE, _FILLER).map("".join)


@settings(max_examples=500)
@given(_LINE)
def test_the_quick_check_masks_what_the_patterns_mask(text: str) -> None:
    """Most lines are passed over by a check for the patterns' words; it passes over
    none that a pattern would change."""
    assert mask(text) == _masked(text)


def test_a_url_without_a_password_is_unchanged() -> None:
    for url in ("sqlite:////tmp/ledger.db", "postgresql://postgres@db/test", "s3://bucket/p"):
        assert mask_url(url) == url
    assert mask_url(f"postgresql://u:{SECRET}@db:5432/x") == "postgresql://u:***@db:5432/x"


def test_every_log_line_is_masked_whatever_logs_it() -> None:
    configure_logging("INFO")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    plain = logging.StreamHandler(out)  # a library's handler, not ours
    for name, h in (("dsr.test", handler), ("some.library", plain)):
        logger = logging.getLogger(name)
        logger.addHandler(h)
        try:
            logger.warning("connecting to %s", f"postgresql://u:{SECRET}@db/x")
            logger.warning("failed", extra={"url": f"smtp://u:{SECRET}@mx"})
            try:
                raise ValueError(f"Authorization: Bearer {SECRET}")
            except ValueError:
                logger.exception("call failed")
        finally:
            logger.removeHandler(h)
    text = out.getvalue()
    assert "postgresql://u:***@db/x" in text
    assert SECRET not in text
    first = json.loads(text.splitlines()[0])
    assert first["msg"] == "connecting to postgresql://u:***@db/x"
