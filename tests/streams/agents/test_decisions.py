"""Decisions: an operator extends an open request's deadline, as its regulation allows."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from services.delivery.package import package_prefix
from services.demo.scenario import TARO, event
from services.signing import Keyring
from streams import topics
from streams.agents import aggregate, decisions, decode, fanout, intake
from streams.context import Outgoing, Pipeline
from streams.records import DecisionEvent, ResponseEvent, dump
from tests.fixtures.ledger_reads import rejected_events
from tests.streams.agents.fixtures import body, run_tasks, to


def _submit(
    p: Pipeline, request_id: str, regulation: str, status: str = "pending"
) -> dict[str, Any]:
    """Submit a disclosure with its verification at ``status``; return the event sent."""
    raw = event(request_id, "disclosure", TARO, regulation=regulation)
    raw["verification"]["status"] = status
    intake.handle_request(p, json.dumps(raw).encode())
    return raw


def _extend(p: Pipeline, request_id: str, headers: object = None) -> list[Outgoing]:
    decision = DecisionEvent(
        request_id=request_id,
        decision="extension",
        reason="Your request covers many systems.",
        decided_by="op-1",
    )
    return decisions.handle_decision(p, dump(decision), headers)  # type: ignore[arg-type]


def _reason(out: list[Outgoing]) -> str:
    [rejected] = to(topics.REJECTED, out)
    return str(body(rejected)["reason_code"])


def test_rule_11_a_gdpr_extension_adds_two_months_and_reaches_the_response(
    pipeline: Pipeline,
) -> None:
    pending = _submit(pipeline, "gx-1", "gdpr")
    before = pipeline.ledger.request("gx-1").deadline_at
    assert [o.topic for o in _extend(pipeline, "gx-1")] == [topics.NOTICES]
    assert _reason(_extend(pipeline, "gx-1")) == "already_extended"
    # verification completes: the request is released and answered
    verified = {**pending, "verification": {**pending["verification"], "status": "verified"}}
    out = intake.handle_request(pipeline, json.dumps(verified).encode())
    out = fanout.handle_accepted(pipeline, decode.accepted(to(topics.ACCEPTED, out)[0].value))
    responses = []
    while results := run_tasks(pipeline, out):
        out = [o for raw in results for o in aggregate.handle_result(pipeline, raw)]
        responses += to(topics.RESPONSES, out)
    response = ResponseEvent.model_validate(body(responses[0]))
    [extension] = response.extensions
    assert extension.reason == "Your request covers many systems."
    assert extension.previous_deadline.replace(tzinfo=None) == before.replace(tzinfo=None)
    received: datetime = response.received_at
    assert (response.deadline.year * 12 + response.deadline.month) - (
        received.year * 12 + received.month
    ) == 3  # one month, plus two
    assert response.package is not None
    package = json.loads(pipeline.storage.get(package_prefix(response.request_id) + "data.json"))
    assert package["extensions"][0]["reason"] == extension.reason


def test_a_ccpa_extension_adds_45_days(pipeline: Pipeline) -> None:
    _submit(pipeline, "cx-1", "ccpa")
    before = pipeline.ledger.request("cx-1").deadline_at
    assert [o.topic for o in _extend(pipeline, "cx-1")] == [topics.NOTICES]
    assert (pipeline.ledger.request("cx-1").deadline_at - before).days == 45


def test_the_appi_has_no_extension(pipeline: Pipeline) -> None:
    _submit(pipeline, "ax-1", "appi")
    assert _reason(_extend(pipeline, "ax-1")) == "extension_not_available"
    assert pipeline.ledger.request("ax-1").extensions is None


def test_an_extension_of_an_unknown_or_answered_request_is_refused(pipeline: Pipeline) -> None:
    assert _reason(_extend(pipeline, "nobody")) == "unknown_request"
    _submit(pipeline, "rx-1", "gdpr", status="failed")  # refused at intake: answered
    assert _reason(_extend(pipeline, "rx-1")) == "request_closed"
    assert [r.reason_code for r in rejected_events(pipeline.ledger)] == [
        "unknown_request",
        "request_closed",
    ]


def test_an_unsigned_decision_is_rejected(pipeline: Pipeline) -> None:
    signed = replace(pipeline, keyring=Keyring({"ops": b"k" * 32}))
    _submit(pipeline, "ux-1", "gdpr")
    assert _reason(_extend(signed, "ux-1")) == "unsigned"
    assert pipeline.ledger.request("ux-1").extensions is None


def _refuse(p: Pipeline, request_id: str, ground: str) -> list[Outgoing]:
    decision = DecisionEvent(
        request_id=request_id,
        decision="refusal",
        ground=ground,
        reason="Disclosing the notes would reveal another customer's complaint.",
        decided_by="op-2",
    )
    return decisions.handle_decision(p, dump(decision))


def test_rule_5_an_appi_art_33_2_refusal_answers_the_held_request(pipeline: Pipeline) -> None:
    _submit(pipeline, "rf-1", "appi")  # held for verification
    out = _refuse(pipeline, "rf-1", "harm_to_principal_or_third_party")
    [response] = [ResponseEvent.model_validate(body(o)) for o in to(topics.RESPONSES, out)]
    assert response.status == "refused"
    [reason] = response.reasons
    assert reason.code == "harm_to_principal_or_third_party"
    assert reason.message.startswith("Art. 33(2)(i)")
    [audit] = [e for e in pipeline.ledger.timeline("rf-1") if e.action == "refused"]
    assert audit.actor == "operator:op-2" and audit.detail["was"] == "held"
    # the request is answered: a later release changes nothing
    later = intake.handle_request(
        pipeline, json.dumps(event("rf-1", "disclosure", TARO, regulation="appi")).encode()
    )
    assert to(topics.ACCEPTED, later) == []


def test_a_refusal_needs_a_ground_of_the_requests_regulation(pipeline: Pipeline) -> None:
    _submit(pipeline, "rf-2", "appi")
    wrong = _refuse(pipeline, "rf-2", "manifestly_unfounded")
    assert _reason(wrong) == "unknown_ground"
    # the rejection lists what would have been accepted
    [error] = body(to(topics.REJECTED, wrong)[0])["errors"]
    assert error["loc"] == "ground"
    assert "harm_to_principal_or_third_party" in error["msg"]
    assert "manifestly_unfounded" not in error["msg"].split("accepted:")[1]
    assert pipeline.ledger.request("rf-2").status == "held"
    _submit(pipeline, "rf-3", "gdpr")
    assert to(topics.RESPONSES, _refuse(pipeline, "rf-3", "manifestly_unfounded"))


def test_a_request_being_carried_out_is_not_refused(pipeline: Pipeline) -> None:
    out = intake.handle_request(pipeline, json.dumps(event("rf-4", "disclosure", TARO)).encode())
    fanout.handle_accepted(pipeline, decode.accepted(to(topics.ACCEPTED, out)[0].value))
    assert _reason(_refuse(pipeline, "rf-4", "violation_of_other_laws")) == "already_fanned_out"


def test_only_a_refusal_names_a_ground() -> None:
    with pytest.raises(ValidationError):
        DecisionEvent(request_id="x", decision="refusal", reason="r", decided_by="o")
    with pytest.raises(ValidationError):
        DecisionEvent(request_id="x", decision="extension", ground="g", reason="r", decided_by="o")


def test_a_decision_read_again_is_applied_once_and_never_rejected(pipeline: Pipeline) -> None:
    """Its worker killed after applying them and before committing its offsets, the
    worker reads the same decisions again: an extension, a part refused and a refusal
    are each applied and audited once, and none is rejected as already applied. Sent
    again (another message), the extension is rejected, as before."""
    _submit(pipeline, "again-x", "gdpr")
    _submit(pipeline, "again-r", "appi")
    extension = DecisionEvent(
        request_id="again-x", decision="extension", reason="Many systems.", decided_by="op-1"
    )
    part = DecisionEvent(
        request_id="again-r",
        decision="refusal",
        ground="harm_to_principal_or_third_party",
        reason="The notes name another customer.",
        decided_by="op-2",
        system="crm",
    )
    whole = part.model_copy(update={"system": None})
    read = [(dump(d), f"dsr.decisions/0/{i}") for i, d in enumerate([extension, part, whole])]

    def handle() -> list[Outgoing]:
        return [o for raw, at in read for o in decisions.handle_decision(pipeline, raw, None, at)]

    first = handle()
    trails = {rid: pipeline.ledger.timeline(rid) for rid in ("again-x", "again-r")}
    again = handle()
    assert to(topics.REJECTED, first + again) == []
    assert {rid: [e.id for e in pipeline.ledger.timeline(rid)] for rid in trails} == {
        rid: [e.id for e in trail] for rid, trail in trails.items()
    }
    assert [e.action for e in trails["again-x"]].count("extended") == 1
    actions = [e.action for e in trails["again-r"]]
    assert actions.count("refused_in_part") == 1 and actions.count("refused") == 1
    assert len(pipeline.ledger.request("again-r").refused_parts) == 1
    assert rejected_events(pipeline.ledger) == []

    later = decisions.handle_decision(pipeline, dump(extension), None, "dsr.decisions/0/9")
    assert _reason(later) == "already_extended"
