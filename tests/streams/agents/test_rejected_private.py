"""The rejected topic carries a digest, the reason and the failing fields: never the event
in clear, only sealed to the pipeline's public key."""

from __future__ import annotations

import hashlib
import json

import pytest

from services.demo.scenario import TARO, event
from streams import topics
from streams.agents import intake
from streams.context import Pipeline
from tests.streams.agents.fixtures import body, opened, to

PHONE = "090-7777-1234"
EMAIL = "jiro.suzuki@example.jp"

CASES = {
    "invalid_json": b'{"request_id": "bad-1", "email": "' + EMAIL.encode() + b'",',
    "schema_violation": json.dumps(
        {**event("bad-2", "disclosure", TARO), "kind": PHONE, "subject": {"phone": PHONE}}
    ).encode(),
    "invalid_encoding": b"\xff\xfe" + EMAIL.encode(),
}


@pytest.mark.parametrize("reason", sorted(CASES))
def test_a_rejected_event_names_its_fields_and_digest_never_its_content(
    pipeline: Pipeline, reason: str
) -> None:
    raw = CASES[reason]
    [out] = to(topics.REJECTED, intake.handle_request(pipeline, raw))
    rejected = body(out)
    assert rejected["reason_code"] == reason
    assert rejected["digest"] == hashlib.sha256(raw).hexdigest()
    wire = out.value.decode()
    for secret in (EMAIL, PHONE, TARO["email"], "jiro"):
        assert secret not in wire
    assert opened(pipeline, rejected) == raw  # kept, but only the pipeline can open it
    if reason == "schema_violation":
        assert "kind" in {e.get("loc") for e in rejected["errors"]}
        assert all("input" not in e for e in rejected["errors"])


def test_without_pipeline_keys_nothing_is_kept(pipeline: Pipeline) -> None:
    from dataclasses import replace

    [out] = to(topics.REJECTED, intake.handle_request(replace(pipeline, sealer=None), b"{"))
    assert body(out)["sealed_raw"] is None
    assert body(out)["digest"] == hashlib.sha256(b"{").hexdigest()
