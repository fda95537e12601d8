"""Grounds at intake (APPI.md rule 8): each ground is one the regulation knows for the
kind, both the pre-2022 and the 2022 APPI grounds are accepted, and the grounds invoked
are recorded in the audit trail."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.demo.scenario import TARO, event
from streams import topics
from streams.agents import intake
from streams.context import Pipeline
from tests.streams.agents.fixtures import body, to


def _raw(request_id: str, kind: str, grounds: list[str], **over: Any) -> bytes:
    return json.dumps(event(request_id, kind, TARO, grounds=grounds, **over)).encode()


@pytest.mark.parametrize(
    ("kind", "ground"),
    [
        ("suspension", "used_beyond_purpose"),  # before 2022: Art. 18
        ("erasure", "improperly_acquired"),  # before 2022: Art. 20
        ("third_party_stop", "provided_without_consent"),  # before 2022: Art. 27(1)
        ("suspension", "no_longer_needed"),  # 2022: Art. 35(5)
        ("erasure", "reportable_breach"),  # 2022: Art. 35(5), Art. 26
        ("third_party_stop", "harm_to_rights"),  # 2022: Art. 35(5)
    ],
)
def test_rule_8_pre_2022_and_2022_grounds_are_accepted_and_recorded(
    pipeline: Pipeline, kind: str, ground: str
) -> None:
    request_id = f"g-{kind}-{ground}"
    out = intake.handle_request(pipeline, _raw(request_id, kind, [ground]))
    assert [o.topic for o in out] == [topics.ACCEPTED]
    [received] = [e for e in pipeline.ledger.timeline(request_id) if e.action == "received"]
    assert received.detail["grounds"] == [ground]
    assert received.actor == "intake"


def test_rule_8_a_ground_the_regulation_does_not_know_is_rejected_with_the_accepted_list(
    pipeline: Pipeline,
) -> None:
    # "consent_withdrawn" is a GDPR erasure ground, not an APPI one.
    out = intake.handle_request(pipeline, _raw("g-bad", "erasure", ["consent_withdrawn"]))
    [rejected] = to(topics.REJECTED, out)
    assert [o.topic for o in out] == [topics.REJECTED]
    reply = body(rejected)
    assert reply["reason_code"] == "unknown_ground"
    assert "consent_withdrawn" in reply["errors"][0]["msg"]
    assert "no_longer_needed" in reply["errors"][0]["msg"]  # what would be accepted
    assert pipeline.ledger.request("g-bad") is None  # the id stays free for the fixed event


def test_rule_8_each_regulation_has_its_own_grounds(pipeline: Pipeline) -> None:
    gdpr = _raw("g-gdpr", "erasure", ["consent_withdrawn"], regulation="gdpr")
    ccpa = _raw("g-ccpa", "third_party_stop", ["opt_out_of_sale_or_sharing"], regulation="ccpa")
    assert [o.topic for o in intake.handle_request(pipeline, gdpr)] == [topics.ACCEPTED]
    # a CCPA request is also acknowledged (rule 15)
    assert [o.topic for o in intake.handle_request(pipeline, ccpa)] == [
        topics.NOTICES,
        topics.ACCEPTED,
    ]


def test_a_ccpa_opt_out_is_fanned_out_unverified_with_its_15_business_day_clock(
    pipeline: Pipeline,
) -> None:
    raw = _raw(
        "g-ccpa-opt-out",
        "third_party_stop",
        ["opt_out_of_sale_or_sharing"],
        regulation="ccpa",
        received_at="2026-12-04T09:00:00+00:00",  # a Friday
        verification={"status": "pending", "method": "none"},
    )
    out = intake.handle_request(pipeline, raw)
    assert [o.topic for o in out if o.topic != topics.NOTICES] == [topics.ACCEPTED]
    row = pipeline.ledger.request("g-ccpa-opt-out")
    assert row is not None and row.hold_reason is None
    # 15 business days from Friday 4 December: Friday 25 December (holidays not counted out)
    assert row.deadline_at.replace(tzinfo=None).isoformat() == "2026-12-25T09:00:00"
