"""What a re-send under a known request_id may change: release evidence while held,
nothing else, ever."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.crypto.digests import subject_digests
from services.ledger.resends import (
    RELEASE_EVIDENCE,
    changed_by_digest,
    changed_fields,
    conflicts,
    evidence,
)
from streams.records import RequestEvent
from tests.fixtures.ledger_rows import event

STORED = event(
    fee={"required": True, "paid": False, "amount_jpy": 1000},
    requester={"type": "appointed_agent", "name": "Agent K"},
    verification={"status": "pending", "method": "mail_otp"},
)


def _resent(**over: Any) -> RequestEvent:
    return RequestEvent.model_validate({**STORED.model_dump(mode="json"), **over})


@pytest.mark.parametrize(
    ("over", "fields"),
    [
        ({"subject": {"identifiers": {"email": "b@example.jp"}}}, ["subject.identifiers"]),
        (  # one more identifier is another subject too
            {"subject": {"identifiers": {"email": "a@example.jp", "customer_id": "C-2"}}},
            ["subject.identifiers"],
        ),
        (  # the addressee's name is who the letter is to: never changed by a re-send
            {"subject": {"identifiers": {"email": "a@example.jp"}, "name": "Someone Else"}},
            ["subject.name"],
        ),
        ({"kind": "third_party_records"}, ["kind"]),
        ({"regulation": "gdpr"}, ["regulation"]),
        ({"requester": {"type": "statutory_agent", "name": "Agent K"}}, ["requester.type"]),
        ({"requester": {"type": "appointed_agent", "name": "Agent L"}}, ["requester.name"]),
        (
            {"delivery": {"method": "written", "address": "Osaka"}},
            ["delivery.address", "delivery.method"],
        ),
        ({"received_at": "2026-11-25T09:00:00+09:00"}, ["received_at"]),
        ({"fee": {"required": True, "paid": False, "amount_jpy": 10}}, ["fee.amount_jpy"]),
        ({"note": "please hurry"}, ["note"]),
    ],
)
def test_a_change_to_what_the_request_is_is_a_conflict_held_or_not(
    over: dict[str, Any], fields: list[str]
) -> None:
    changed = changed_fields(STORED, _resent(**over))
    assert changed == fields
    assert conflicts(changed, held=True) == conflicts(changed, held=False) == fields


def test_evidence_only_releases_a_held_request_and_conflicts_with_any_other() -> None:
    release = _resent(
        verification={"status": "verified", "method": "drivers_licence", "reference": "KYC-9"},
        fee={"required": True, "paid": True, "amount_jpy": 1000, "payment_reference": "PAY-1"},
        requester={"type": "appointed_agent", "name": "Agent K", "authority_reference": "POA-3"},
    )
    changed = changed_fields(STORED, release)
    assert set(changed) == RELEASE_EVIDENCE
    assert conflicts(changed, held=True) == []
    assert conflicts(changed, held=False) == changed  # nothing left to release
    assert evidence(release) == {
        "verification_status": "verified",
        "verification_method": "drivers_licence",
        "verification_reference": "KYC-9",
        "fee_paid": True,
        "payment_reference": "PAY-1",
        "authority_reference": "POA-3",
    }


def test_evidence_and_a_new_subject_together_name_only_the_subject() -> None:
    sneaky = _resent(
        verification={"status": "verified"}, subject={"identifiers": {"email": "b@example.jp"}}
    )
    changed = changed_fields(STORED, sneaky)
    assert conflicts(changed, held=True) == ["subject.identifiers"]
    assert "b@example.jp" not in repr(changed)


def test_an_identical_re_send_changes_nothing_whatever_the_spelling_of_its_time() -> None:
    assert changed_fields(STORED, _resent()) == []
    same_instant = _resent(received_at="2026-11-24T00:00:00Z")
    assert changed_fields(STORED, same_instant) == []


def test_once_the_stored_event_is_shredded_the_digests_still_tell_another_subject() -> None:
    known = subject_digests({"email": "a@example.jp"}) | subject_digests({"customer_id": "C-1"})
    assert changed_by_digest("disclosure", "appi", known, STORED) == []
    other = _resent(subject={"identifiers": {"email": "b@example.jp"}})
    assert changed_by_digest("disclosure", "appi", known, other) == ["subject.identifiers"]
    assert changed_by_digest("erasure", "gdpr", known, STORED) == ["kind", "regulation"]


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
        st.text(min_size=1, max_size=12),
        min_size=1,
        max_size=4,
    )
)
def test_no_re_send_changes_who_a_request_is_about(identifiers: dict[str, str]) -> None:
    resent = _resent(subject={"identifiers": identifiers}, verification={"status": "verified"})
    moved = identifiers != STORED.subject.identifiers
    assert ("subject.identifiers" in conflicts(changed_fields(STORED, resent), held=True)) is moved
