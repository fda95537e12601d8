"""Deep nesting is rejected at intake with ``too_deep``, before any signature check or
validation recurses into it."""

from __future__ import annotations

import json
from dataclasses import replace

from services import parsing
from services.demo.scenario import TARO, event
from services.signing import Keyring
from streams import topics
from streams.agents import intake
from streams.context import Pipeline
from tests.fixtures.ledger_reads import rejected_events
from tests.streams.agents.fixtures import body, to


def nested(depth: int) -> dict[str, object]:
    """A valid request with an extra field nested ``depth`` levels below the top."""
    raw = json.dumps(event("deep-1", "disclosure", TARO))
    inner = "[" * (depth - 2) + "]" * (depth - 2)
    return json.loads(raw[:-1] + f', "extra": {{"x": {inner}}}}}')


def test_an_event_nested_a_thousand_deep_is_rejected_too_deep(pipeline: Pipeline) -> None:
    raw = b'{"request_id": "deep-1", "a": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    [rejected] = to(topics.REJECTED, intake.handle_request(pipeline, raw))
    assert body(rejected)["reason_code"] == "too_deep"
    assert pipeline.ledger.request("deep-1") is None
    assert [r.reason_code for r in rejected_events(pipeline.ledger)] == ["too_deep"]


def test_the_limit_is_exact(pipeline: Pipeline) -> None:
    at_limit = json.dumps(nested(parsing.MAX_DEPTH)).encode()
    over = json.dumps(nested(parsing.MAX_DEPTH + 1)).encode()
    # at the limit the depth check passes: the schema then refuses the extra field
    [first] = to(topics.REJECTED, intake.handle_request(pipeline, at_limit))
    assert body(first)["reason_code"] == "schema_violation"
    [second] = to(topics.REJECTED, intake.handle_request(pipeline, over))
    assert body(second)["reason_code"] == "too_deep"


def test_signed_deep_events_are_rejected_before_the_signature_is_checked(
    pipeline: Pipeline,
) -> None:
    """Deep enough to parse but not to canonicalise for the signature on a smaller
    stack: refused first, with its reason code, not as a bad signature."""
    raw = b'{"request_id": "deep-2", "a": ' + b'{"b": ' * 200 + b"1" + b"}" * 200 + b"}"
    keyring = Keyring({"ops": b"s" * 32})
    signed = replace(pipeline, keyring=keyring)
    headers = keyring.signer("ops").headers(b"{}")  # a signature that does not match
    [rejected] = to(topics.REJECTED, intake.handle_request(signed, raw, headers))
    assert body(rejected)["reason_code"] == "too_deep"
    assert body(rejected)["request_id"] == "deep-2"
