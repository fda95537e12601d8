"""Per-key permissions: a key sends only what its keyring entry allows, a decision is its
key owner's, every audit row names the key, and replays do nothing."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pytest

from services.demo.scenario import TARO, event
from services.provisions.store import ProvisionStore
from services.signing import Keyring, Permissions
from streams import topics
from streams.agents import decisions, fanout, intake
from streams.agents.provisions import handle_provision
from streams.context import Outgoing, Pipeline
from streams.records import Accepted, DecisionEvent, dump
from tests.fixtures.ledger_reads import rejected_events
from tests.services.provisions.fixtures import provision
from tests.streams.agents.fixtures import accepted, body, to

KEYRING = Keyring(
    {"ops": b"o" * 32, "crm-export": b"c" * 32, "alice": b"a" * 32},
    {
        "ops": Permissions.everything("operator"),
        "crm-export": Permissions(
            "CRM export job",
            requests=frozenset({"disclosure"}),
            releases=False,
            provisions=frozenset({"crm"}),
        ),
        "alice": Permissions("Alice Sato", frozenset(), releases=False, decisions=True),
    },
)


@pytest.fixture
def signed(pipeline: Pipeline) -> Pipeline:
    return replace(pipeline, keyring=KEYRING)


def _signed(p: Pipeline, handler: Any, body_: Any, key_id: str, at: float | None = None) -> Any:
    raw = body_ if isinstance(body_, bytes) else json.dumps(body_).encode()
    return handler(p, raw, KEYRING.signer(key_id).headers(raw, at))


def _request(p: Pipeline, ev: dict[str, Any], key_id: str = "ops") -> list[Outgoing]:
    return _signed(p, intake.handle_request, ev, key_id)  # type: ignore[no-any-return]


def _decide(p: Pipeline, key_id: str, request_id: str, **kind: Any) -> list[Outgoing]:
    decision = DecisionEvent(
        request_id=request_id,
        reason="Your request covers many systems.",
        decided_by="the-ceo",  # free text: never believed
        **kind,
    )
    return _signed(p, decisions.handle_decision, dump(decision), key_id)  # type: ignore[no-any-return]


def _refused(out: list[Outgoing], code: str = "not_permitted") -> dict[str, Any]:
    """The one rejection in ``out``; nothing else is sent (no notice, no release)."""
    assert [o.topic for o in out] == [topics.REJECTED]
    rejected = body(out[0])
    assert rejected["reason_code"] == code
    if code == "not_permitted":  # refused after reading it: the event is not echoed
        assert rejected["sealed_raw"] is None and "taro@example.jp" not in out[0].value.decode()
    return rejected


def _rejections(p: Pipeline, request_id: str | None = None) -> list[tuple[Any, ...]]:
    return (
        [
            (e.detail["reason_code"], e.detail.get("key_id"))
            for e in p.ledger.timeline(request_id)
            if e.action == "rejected"
        ]
        if request_id
        else [(r.reason_code, r.request_id) for r in rejected_events(p.ledger)]
    )


def _held(p: Pipeline, request_id: str) -> dict[str, Any]:
    unpaid = event(request_id, "disclosure", TARO, fee={"required": True, "amount_jpy": 1000})
    _request(p, unpaid)
    row = p.ledger.request(request_id)
    assert row is not None and (row.status, row.hold_reason) == ("held", "fee_unpaid")
    return unpaid


def test_a_forged_refusal_and_extension_change_nothing_and_name_the_key(signed: Pipeline) -> None:
    _held(signed, "pf-1")
    before = signed.ledger.request("pf-1")
    assert before is not None
    _refused(
        _decide(signed, "crm-export", "pf-1", decision="refusal", ground="manifestly_unfounded")
    )
    _refused(_decide(signed, "crm-export", "pf-1", decision="extension"))
    after = signed.ledger.request("pf-1")
    assert after is not None
    assert (after.status, after.deadline_at, after.extensions) == (
        "held",
        before.deadline_at,
        None,
    )
    assert signed.ledger.response("pf-1") is None
    actions = [e.action for e in signed.ledger.timeline("pf-1")]
    assert "refused" not in actions and "extended" not in actions
    assert _rejections(signed, "pf-1") == [
        ("not_permitted", "crm-export"),
        ("not_permitted", "crm-export"),
    ]


def test_a_decision_is_its_key_owners_whatever_decided_by_says(signed: Pipeline) -> None:
    ev = event("pd-1", "disclosure", TARO, regulation="gdpr")
    _request(signed, ev)
    assert to(topics.NOTICES, _decide(signed, "alice", "pd-1", decision="extension"))
    [extended] = [e for e in signed.ledger.timeline("pd-1") if e.action == "extended"]
    assert extended.actor == "operator:Alice Sato"
    assert extended.detail["key_id"] == "alice"
    assert "the-ceo" not in json.dumps([e.detail for e in signed.ledger.timeline("pd-1")])
    # a decision that cannot apply is rejected, and still names its key
    [again] = to(topics.REJECTED, _decide(signed, "alice", "pd-1", decision="extension"))
    assert body(again)["reason_code"] == "already_extended"
    assert _rejections(signed, "pd-1") == [("already_extended", "alice")]


def test_a_cross_key_release_is_refused_and_the_owner_key_still_releases(
    signed: Pipeline,
) -> None:
    unpaid = _held(signed, "pr-1")
    paid = {**unpaid, "fee": {**unpaid["fee"], "paid": True, "payment_reference": "PAY-9"}}
    _refused(_request(signed, paid, "crm-export"))
    row = signed.ledger.request("pr-1")
    assert row is not None and (row.status, row.hold_reason) == ("held", "fee_unpaid")
    assert not signed.ledger.request_event(row).fee.paid
    assert signed.ledger.tasks("pr-1") == []  # no system was asked anything
    assert _rejections(signed, "pr-1") == [("not_permitted", "crm-export")]
    # the same evidence from a key allowed releases releases it
    out = _request(signed, paid, "ops")
    assert [Accepted.read(o.value) for o in to(topics.ACCEPTED, out)] == [accepted("pr-1")]


def test_a_request_of_a_kind_the_key_may_not_send_is_never_recorded(signed: Pipeline) -> None:
    erasure = event("pk-1", "erasure", TARO, grounds=["no_longer_needed"])
    _refused(_request(signed, erasure, "crm-export"))
    assert signed.ledger.request("pk-1") is None
    assert _rejections(signed, "pk-1") == [("not_permitted", "crm-export")]
    # a disclosure, which it may send, is admitted under its key
    assert to(topics.ACCEPTED, _request(signed, event("pk-2", "disclosure", TARO), "crm-export"))
    [received] = [e for e in signed.ledger.timeline("pk-2") if e.action == "received"]
    assert received.detail["key_id"] == "crm-export"


def test_provision_records_only_for_the_keys_systems(signed: Pipeline) -> None:
    store = ProvisionStore(signed.ledger.engine)
    for record_id, system in (("pp-1", "no-such-system"), ("pp-2", "partners")):
        record = provision(record_id, TARO, system=system)
        _refused(_signed(signed, handle_provision, record, "crm-export"))
    _refused(_signed(signed, handle_provision, provision("pp-3", TARO), "alice"))
    assert store.records_of(TARO) == []
    assert _rejections(signed) == [("not_permitted", None)] * 3
    assert [e.detail["key_id"] for e in signed.ledger.timeline(None) if e.action == "rejected"] == [
        "crm-export",
        "crm-export",
        "alice",
    ]
    assert (
        _signed(signed, handle_provision, provision("pp-4", TARO, system="crm"), "crm-export") == []
    )
    assert [r.record_id for r in store.records_of(TARO)] == ["pp-4"]
    [recorded] = [e for e in signed.ledger.timeline(None) if e.action == "provision_recorded"]
    assert recorded.detail["key_id"] == "crm-export"


def test_a_stale_replay_is_rejected_and_changes_nothing(signed: Pipeline) -> None:
    ev = event("ps-1", "disclosure", TARO)
    raw = json.dumps(ev).encode()
    an_hour_ago = time.time() - 3600
    _refused(_signed(signed, intake.handle_request, raw, "ops", an_hour_ago), "stale_signature")
    assert signed.ledger.request("ps-1") is None
    assert _rejections(signed, "ps-1") == [("stale_signature", "ops")]
    undated = [(k, v) for k, v in KEYRING.signer().headers(raw) if k != "dsr-signed-at"]
    _refused(intake.handle_request(signed, raw, undated), "stale_signature")
    assert signed.ledger.request("ps-1") is None


def test_fifty_replays_of_an_open_request_send_it_to_fan_out_once(signed: Pipeline) -> None:
    ev = event("pn-1", "disclosure", TARO)
    raw = json.dumps(ev).encode()
    headers = KEYRING.signer().headers(raw)
    out = [o for _ in range(50) for o in intake.handle_request(signed, raw, headers)]
    assert [Accepted.read(o.value) for o in to(topics.ACCEPTED, out)] == [
        accepted("pn-1")
    ]  # before fan-out
    tasks = fanout.handle_accepted(signed, "pn-1")
    assert [o for o in tasks if o.topic.startswith(topics.TASKS_PREFIX)]
    again = [o for _ in range(50) for o in intake.handle_request(signed, raw, headers)]
    assert [o.topic for o in again if o.topic != topics.NOTICES] == []
    duplicates = [e for e in signed.ledger.timeline("pn-1") if e.action == "duplicate_ignored"]
    assert len(duplicates) == 99 and {d.detail["key_id"] for d in duplicates} == {"ops"}
