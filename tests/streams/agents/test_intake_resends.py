"""Re-sends under a known request_id: a held request is released by evidence only, and
nothing, held or not, moves a request to another subject, kind, regulation or requester."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from services.crypto.sealing import Sealer
from services.delivery.package import read_package
from services.demo.scenario import HANAKO, TARO, event
from services.ledger import Ledger
from services.signing import Keyring
from streams import topics
from streams.agents import fanout, intake
from streams.context import Outgoing, Pipeline
from streams.records import Task
from tests.fixtures.ledger_reads import rejected_events
from tests.streams.agents.fixtures import body, drive, to

#: Two producers: any key in the keyring signs validly, none may rewrite a request.
KEYRING = Keyring({"ops": b"o" * 32, "crm-export": b"c" * 32})


@pytest.fixture
def signed(pipeline: Pipeline) -> Pipeline:
    return replace(pipeline, keyring=KEYRING)


def _send(p: Pipeline, ev: dict[str, Any], key_id: str = "ops") -> list[Outgoing]:
    raw = json.dumps(ev).encode()
    return intake.handle_request(p, raw, KEYRING.signer(key_id).headers(raw))


def _conflict(out: list[Outgoing]) -> dict[str, Any]:
    [rejected] = to(topics.REJECTED, out)
    assert [o.topic for o in out] == [topics.REJECTED]  # no notice, no release
    reason = body(rejected)
    assert reason["reason_code"] == "request_id_conflict"
    assert reason["sealed_raw"] is None  # the event is not kept, even sealed
    assert "example.jp" not in rejected.value.decode()  # nor any identifier
    return reason


def _audit(p: Pipeline, request_id: str, action: str) -> list[dict[str, Any]]:
    return [e.detail for e in p.ledger.timeline(request_id) if e.action == action]


def test_a_held_disclosure_re_sent_for_another_subject_is_refused_and_answers_the_first(
    signed: Pipeline,
) -> None:
    unpaid = event("rs-1", "disclosure", TARO, fee={"required": True, "amount_jpy": 1000})
    _send(signed, unpaid)
    paid = {**unpaid["fee"], "paid": True, "payment_reference": "PAY-77"}
    # paid, and another person's identifiers, signed by another valid producer key
    hijack = {**unpaid, "fee": paid, "subject": {"identifiers": HANAKO}}
    reason = _conflict(_send(signed, hijack, "crm-export"))
    assert [e["loc"] for e in reason["errors"]] == ["subject.identifiers"]
    row = signed.ledger.request("rs-1")
    assert row is not None and (row.status, row.hold_reason) == ("held", "fee_unpaid")
    assert signed.ledger.request_event(row).subject.identifiers == TARO
    [rejected] = _audit(signed, "rs-1", "rejected")
    assert rejected["reason_code"] == "request_id_conflict"
    assert (rejected["key_id"], rejected["fields"]) == ("crm-export", ["subject.identifiers"])
    assert [r.reason_code for r in rejected_events(signed.ledger)] == ["request_id_conflict"]

    # the real payment releases it: the audit row names the key and the evidence
    out = _send(signed, {**unpaid, "fee": paid})
    assert [o.topic for o in out] == [topics.ACCEPTED]
    [released] = _audit(signed, "rs-1", "released")
    assert released["key_id"] == "ops"
    assert released["evidence"] == {
        "verification_status": "verified",
        "verification_method": "drivers_licence",
        "verification_reference": "KYC-rs-1",
        "fee_paid": True,
        "payment_reference": "PAY-77",
        "authority_reference": None,
    }
    assert _audit(signed, "rs-1", "received")[0]["key_id"] == "ops"
    response = drive(signed, "rs-1")
    assert response.status == "completed"
    data = read_package(signed.storage, "rs-1")["data.json"].decode()
    assert "taro@example.jp" in data and "Green tea set" in data
    assert "hanako@example.jp" not in data and "Rice cooker" not in data


@pytest.mark.parametrize(
    ("over", "fields"),
    [
        ({"kind": "third_party_records"}, ["kind"]),
        ({"regulation": "gdpr"}, ["regulation"]),
        (
            {"requester": {"type": "appointed_agent", "name": "K"}},
            ["requester.name", "requester.type"],
        ),
        ({"delivery": {"method": "electronic", "address": "x@evil.test"}}, ["delivery.address"]),
    ],
)
def test_a_held_request_keeps_its_kind_regulation_requester_and_delivery(
    signed: Pipeline, over: dict[str, Any], fields: list[str]
) -> None:
    pending = event("rs-2", "disclosure", TARO, verification={"status": "pending"})
    _send(signed, pending)
    verified = {**pending, "verification": {"status": "verified"}, **over}
    reason = _conflict(_send(signed, verified))
    assert [e["loc"] for e in reason["errors"]] == fields
    row = signed.ledger.request("rs-2")
    assert row is not None and row.status == "held"
    stored = signed.ledger.request_event(row)
    assert (stored.kind, stored.regulation, stored.requester.type) == ("disclosure", "appi", "self")
    assert (stored.requester.name, stored.delivery.address) == (None, None)


def test_an_agents_authority_is_evidence_that_releases(signed: Pipeline) -> None:
    agent = {"type": "appointed_agent", "name": "Agent K"}
    held = event("rs-3", "disclosure", TARO, requester=agent)
    _send(signed, held)
    assert signed.ledger.request("rs-3").hold_reason == "agent_authority_missing"
    with_poa = {**held, "requester": {**agent, "authority_reference": "POA-2026-11"}}
    assert [o.topic for o in _send(signed, with_poa)] == [topics.ACCEPTED]
    [released] = _audit(signed, "rs-3", "released")
    assert released["evidence"]["authority_reference"] == "POA-2026-11"


def test_in_progress_a_differing_re_send_is_refused_and_its_tasks_keep_the_subject(
    signed: Pipeline,
) -> None:
    ev = event("rs-4", "disclosure", TARO)
    _send(signed, ev)
    tasks = to(topics.TASKS_PREFIX + "crm", fanout.handle_accepted(signed, "rs-4"))
    assert signed.sealer is not None
    [task] = [signed.sealer.open(Task.model_validate_json(t.value)) for t in tasks]
    assert task.identifiers == TARO
    _conflict(_send(signed, {**ev, "subject": {"identifiers": HANAKO}}))
    assert _send(signed, ev) == []  # identical: a duplicate, audited with its key
    assert _audit(signed, "rs-4", "duplicate_ignored") == [
        {
            "status": "fanned_out",
            "key_id": "ops",
            "evidence": _audit(signed, "rs-4", "received")[0]["evidence"],
        }
    ]


def test_after_completion_any_difference_is_refused_never_dropped(signed: Pipeline) -> None:
    ev = event("rs-5", "disclosure", TARO)
    _send(signed, ev)
    drive(signed, "rs-5")
    assert _send(signed, ev) == []
    again = {**ev, "verification": {**ev["verification"], "reference": "KYC-other"}}
    reason = _conflict(_send(signed, again, "crm-export"))
    assert [e["loc"] for e in reason["errors"]] == ["verification.reference"]
    assert [e.action for e in signed.ledger.timeline("rs-5")][-2:] == [
        "duplicate_ignored",
        "rejected",
    ]


def test_a_shredded_request_still_refuses_another_subject(signed: Pipeline) -> None:
    ev = event("rs-6", "disclosure", TARO)
    _send(signed, ev)
    drive(signed, "rs-6")
    assert signed.sealer is not None and signed.sealer.keys.destroy("rs-6")
    ledger = Ledger(signed.ledger.url, sealer=Sealer(signed.sealer.keys))  # no cached key
    shredded = replace(signed, ledger=ledger)
    assert _send(shredded, ev) == []  # kind, regulation and digests match: a duplicate
    reason = _conflict(_send(shredded, {**ev, "subject": {"identifiers": HANAKO}}))
    assert [e["loc"] for e in reason["errors"]] == ["subject.identifiers"]
    # the re-sends made no new key: the request's data stays unreadable, and the next
    # shredding has nothing of it to destroy (and to audit) again
    assert "rs-6" not in {k.key_id for k in signed.sealer.keys.list_keys()}
    ledger.close()
