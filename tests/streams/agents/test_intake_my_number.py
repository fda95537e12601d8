"""A My Number anywhere in a request is rejected with ``my_number_not_accepted``; the
value is kept nowhere: not in the ledger, not on the rejected topic, not sealed."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from services.demo.scenario import TARO, event
from services.ledger.models import AuditEntry, Rejected
from streams import topics
from streams.agents import intake
from streams.context import Pipeline
from tests.streams.agents.fixtures import body, to

MY_NUMBER = "1234 5678 9018"


@pytest.mark.parametrize(
    "over",
    [
        {
            "verification": {
                "status": "verified",
                "method": "my_number_card",
                "reference": MY_NUMBER,
            }
        },
        {"subject": {"identifiers": {**TARO, "customer_id": MY_NUMBER.replace(" ", "")}}},
        {"requester": {"type": "appointed_agent", "authority_reference": f"POA {MY_NUMBER}"}},
    ],
)
def test_a_my_number_is_rejected_and_not_kept(pipeline: Pipeline, over: dict[str, object]) -> None:
    raw = json.dumps(event("mn-1", "disclosure", TARO, **over)).encode()
    out = intake.handle_request(pipeline, raw)
    [rejected] = to(topics.REJECTED, out)
    assert [o.topic for o in out] == [topics.REJECTED]
    reply = body(rejected)
    assert reply["reason_code"] == "my_number_not_accepted"
    assert reply["sealed_raw"] is None  # not even sealed
    assert reply["errors"][0]["loc"] in (
        "verification.reference",
        "subject.identifiers.customer_id",
        "requester.authority_reference",
    )
    assert pipeline.ledger.request("mn-1") is None
    digits = MY_NUMBER.replace(" ", "")
    assert digits not in rejected.value.decode() and MY_NUMBER not in rejected.value.decode()
    with pipeline.ledger.session() as s:
        kept = [r.errors for r in s.scalars(select(Rejected))]
        kept += [e.detail for e in s.scalars(select(AuditEntry))]
    assert kept and digits not in json.dumps(kept) and MY_NUMBER not in json.dumps(kept)


def test_a_reference_that_only_looks_like_one_is_accepted(pipeline: Pipeline) -> None:
    reference = "1234 5678 9010"  # 12 digits, wrong check digit
    over = {
        "verification": {"status": "verified", "method": "drivers_licence", "reference": reference}
    }
    out = intake.handle_request(
        pipeline, json.dumps(event("mn-2", "disclosure", TARO, **over)).encode()
    )
    assert [o.topic for o in out] == [topics.ACCEPTED]
