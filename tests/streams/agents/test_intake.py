"""Signed intake: only events signed by a producer key in the keyring are executed."""

import json
from dataclasses import replace

import pytest

from services.demo.scenario import TARO, event
from services.signing import Keyring, Signer
from streams import topics
from streams.agents import intake
from streams.context import Pipeline
from streams.records import Accepted
from tests.fixtures.ledger_reads import rejected_events
from tests.streams.agents.fixtures import accepted, body, to

KEYRING = Keyring({"ops": b"s" * 32})


@pytest.fixture
def signed(pipeline: Pipeline) -> Pipeline:
    return replace(pipeline, keyring=KEYRING)


def _erasure(request_id: str) -> bytes:
    return json.dumps(
        event(request_id=request_id, kind="erasure", identifiers=TARO, grounds=["no_longer_needed"])
    ).encode()


def test_a_signed_erasure_is_admitted(signed: Pipeline) -> None:
    raw = _erasure("sig-1")
    out = intake.handle_request(signed, raw, KEYRING.signer().headers(raw))
    assert [(o.topic, Accepted.read(o.value)) for o in out] == [
        (topics.ACCEPTED, accepted("sig-1"))
    ]


@pytest.mark.parametrize(
    ("signer", "reason"),
    [
        (None, "unsigned"),
        (Signer("ops", b"forged-key-forged-key"), "bad_signature"),
        (Signer("someone", b"s" * 32), "unknown_key"),
    ],
)
def test_an_unsigned_or_forged_erasure_is_rejected_audited_and_never_run(
    signed: Pipeline, signer: Signer | None, reason: str
) -> None:
    raw = _erasure("forged-1")
    out = intake.handle_request(signed, raw, signer.headers(raw) if signer else None)
    [rejected] = to(topics.REJECTED, out)
    assert [o.topic for o in out] == [topics.REJECTED]
    assert body(rejected)["reason_code"] == reason
    assert body(rejected)["request_id"] == "forged-1"
    [audited] = rejected_events(signed.ledger)
    assert audited.reason_code == reason
    assert signed.ledger.request("forged-1") is None


def test_a_request_re_signed_after_tampering_is_rejected(signed: Pipeline) -> None:
    raw = _erasure("sig-2")
    headers = KEYRING.signer().headers(raw)
    tampered = raw.replace(b'"erasure"', b'"disclosure"')
    out = intake.handle_request(signed, tampered, headers)
    assert body(to(topics.REJECTED, out)[0])["reason_code"] == "bad_signature"


def test_without_a_keyring_signatures_are_not_required(pipeline: Pipeline) -> None:
    out = intake.handle_request(pipeline, _erasure("open-1"))
    assert [o.topic for o in out] == [topics.ACCEPTED]
