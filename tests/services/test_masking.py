"""Secrets are masked in printed URLs and in every log line."""

from __future__ import annotations

import io
import json
import logging

import pytest

from services.logs import JsonFormatter, configure_logging
from services.masking import mask, mask_url

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
