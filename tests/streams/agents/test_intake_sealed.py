"""Sealed request events: ``dsr submit`` seals a request whole; intake checks its signature
over the sealed form, then opens it."""

from __future__ import annotations

import json
from dataclasses import replace

from services.demo.scenario import TARO, event
from services.signing import Keyring
from streams import topics
from streams.agents import intake
from streams.context import Pipeline
from tests.streams.agents.fixtures import body, to

KEYRING = Keyring({"ops": b"s" * 32})


def _sealed(p: Pipeline, request_id: str) -> bytes:
    assert p.sealer is not None
    raw = json.dumps(event(request_id, "disclosure", TARO)).encode()
    return p.sealer.seal_request(raw)


def test_a_sealed_signed_request_is_opened_and_admitted(pipeline: Pipeline) -> None:
    signed = replace(pipeline, keyring=KEYRING)
    wire = _sealed(pipeline, "sealed-1")
    assert TARO["email"].encode() not in wire
    out = intake.handle_request(signed, wire, KEYRING.signer().headers(wire))
    assert [o.topic for o in out] == [topics.ACCEPTED]
    row = pipeline.ledger.request("sealed-1")
    assert row is not None and TARO["email"] not in json.dumps(row.event)
    assert pipeline.ledger.request_event(row).subject.identifiers == TARO


def test_a_sealed_request_a_worker_cannot_open_is_rejected_with_its_reason(
    pipeline: Pipeline,
) -> None:
    wire = _sealed(pipeline, "sealed-2")
    [rejected] = to(topics.REJECTED, intake.handle_request(replace(pipeline, sealer=None), wire))
    assert body(rejected)["reason_code"] == "cannot_open"
    assert pipeline.sealer is not None and pipeline.sealer.pipeline is not None
    # Sealed to a pipeline key since retired (rotation): no worker can open it.
    old = pipeline.sealer.pipeline.public().key_id
    pipeline.sealer.pipeline.create("pk-new")
    assert pipeline.sealer.pipeline.retire(old)
    retired = replace(pipeline, sealer=type(pipeline.sealer)(pipeline.sealer.keys))
    [again] = to(topics.REJECTED, intake.handle_request(retired, wire))
    assert body(again)["reason_code"] == "cannot_open"
    assert pipeline.ledger.request("sealed-2") is None


def test_an_envelope_that_hides_another_request_is_rejected(pipeline: Pipeline) -> None:
    inner = _sealed(pipeline, "sealed-3")
    moved = json.loads(inner)
    moved["request_id"] = "sealed-4"  # the sealed event is sealed-3's
    assert pipeline.sealer is not None
    pipeline.sealer.keys.data_key("sealed-4", create=True)
    out = intake.handle_request(pipeline, json.dumps(moved).encode())
    assert body(to(topics.REJECTED, out)[0])["reason_code"] == "cannot_open"
