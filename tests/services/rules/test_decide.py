"""Holds, refusals and deadlines per regulation (APPI.md rules 1, 2, 3, 11, 15)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services import rules
from streams.records import RequestEvent


def make(kind: str = "disclosure", regulation: str = "appi", **over: Any) -> RequestEvent:
    body: dict[str, Any] = {
        "schema_version": "1.0",
        "request_id": "r",
        "kind": kind,
        "regulation": regulation,
        "received_at": "2026-01-31T09:00:00+00:00",
        "subject": {"identifiers": {"email": "a@example.jp"}},
        "verification": {"status": "verified"},
    }
    if kind in ("suspension", "erasure", "third_party_stop"):
        body["grounds"] = ["no_longer_needed"]
    if kind == "correction":
        body["correction"] = {"changes": [{"field": "name", "value": "x"}]}
    body.update(over)
    return RequestEvent.model_validate(body)


def test_rule_1_unverified_identity_is_held() -> None:
    d = rules.decide(make(verification={"status": "pending"}))
    assert (d.action, d.reason_code) == ("hold", "verification_pending")


def test_failed_verification_is_refused_with_a_reason() -> None:
    d = rules.decide(make(verification={"status": "failed"}))
    assert (d.action, d.reason_code) == ("refuse", "identity_not_verified")
    assert d.message


@pytest.mark.parametrize(
    ("kind", "ground"),
    [("third_party_stop", "opt_out_of_sale_or_sharing"), ("suspension", "limit_sensitive_use")],
)
@pytest.mark.parametrize("status", ["pending", "failed", "verified"])
def test_a_ccpa_opt_out_needs_no_verification_and_is_due_in_15_business_days(
    kind: str, ground: str, status: str
) -> None:
    """Regs §7026/§7027: opting out of sale or sharing, and limiting sensitive use, are
    honoured without verifying identity, within 15 business days."""
    event = make(kind, "ccpa", grounds=[ground], verification={"status": status})
    assert rules.decide(event).action == "proceed"
    # received Saturday 31 Jan 2026: 15 business days later is Friday 20 Feb
    assert rules.deadline(event) == datetime(2026, 2, 20, 9, tzinfo=UTC)


def test_other_ccpa_rights_and_other_regulations_still_verify() -> None:
    pending = {"status": "pending"}
    delete = make("erasure", "ccpa", grounds=["consumer_request"], verification=pending)
    assert rules.decide(delete).reason_code == "verification_pending"
    assert rules.deadline(delete) == datetime(2026, 3, 17, 9, tzinfo=UTC)  # 45 days
    appi_stop = make("third_party_stop", verification=pending)
    assert rules.decide(appi_stop).reason_code == "verification_pending"


def test_rule_2_appointed_agent_without_power_of_attorney_is_held() -> None:
    d = rules.decide(make(requester={"type": "appointed_agent"}))
    assert (d.action, d.reason_code) == ("hold", "agent_authority_missing")
    ok = rules.decide(make(requester={"type": "appointed_agent", "authority_reference": "POA"}))
    assert ok.action == "proceed"


def test_rule_2_statutory_agent_needs_proof_of_representation() -> None:
    d = rules.decide(make(requester={"type": "statutory_agent"}))
    assert (d.action, d.reason_code) == ("hold", "representation_proof_missing")


@pytest.mark.parametrize("kind", ["disclosure", "third_party_records", "purpose_notification"])
def test_rule_3_fee_kinds_wait_for_payment(kind: str) -> None:
    d = rules.decide(make(kind, fee={"required": True, "paid": False}))
    assert (d.action, d.reason_code) == ("hold", "fee_unpaid")
    assert rules.decide(make(kind, fee={"required": True, "paid": True})).action == "proceed"


@pytest.mark.parametrize("kind", ["correction", "suspension", "erasure", "third_party_stop"])
def test_rule_3_other_kinds_never_wait_for_a_fee(kind: str) -> None:
    assert rules.decide(make(kind, fee={"required": True, "paid": False})).action == "proceed"


def test_rule_11_deadlines_per_regulation() -> None:
    assert rules.deadline(make(regulation="appi")) == datetime(2026, 2, 14, 9, tzinfo=UTC)
    # one calendar month, clamped to the end of February
    assert rules.deadline(make(regulation="gdpr")) == datetime(2026, 2, 28, 9, tzinfo=UTC)
    assert rules.deadline(make(regulation="ccpa")) == datetime(2026, 3, 17, 9, tzinfo=UTC)


@pytest.mark.parametrize("regulation", ["appi", "gdpr", "ccpa"])
def test_what_an_open_request_owes_before_its_response(regulation: str) -> None:
    """CCPA confirms receipt (§ 7021, 10 business days); the others do not. A held
    request's principal is told why, an extended one's of the new deadline."""
    ack = ["acknowledgement"] if regulation == "ccpa" else []
    assert rules.notices_owed(regulation, held=False) == ack
    assert rules.notices_owed(regulation, held=True) == [*ack, "hold"]
    assert rules.notices_owed(regulation, held=False, extended=True) == [*ack, "extension"]
