"""An operator refuses one system's part of a request, or fields of a disclosure: the
rest goes on, the response is partially completed with that reason, and what was
refused is not in what the principal receives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.delivery.package import read_package
from services.demo.scenario import HANAKO, TARO, event
from services.rules import appi
from streams import topics
from streams.agents import aggregate, decisions, fanout, intake
from streams.context import Pipeline
from streams.records import DecisionEvent, Outcome, ResponseStatus, Task, dump
from tests.streams.agents.fixtures import body, drive, run_tasks, to

GROUND = "serious_interference_with_business"
WRITTEN = {"method": "written", "address": "東京都千代田区1-1"}
PENDING = {"status": "pending", "method": "drivers_licence", "reference": "KYC-1"}


def submit(p: Pipeline, request_id: str, kind: str = "disclosure", **kw: Any) -> dict[str, Any]:
    sent = event(request_id, kind, TARO, **kw)
    intake.handle_request(p, json.dumps(sent).encode())
    return sent


def release(p: Pipeline, sent: dict[str, Any]) -> None:
    """Send the held request again, its identity now verified."""
    verified = {**sent, "verification": {**sent["verification"], "status": "verified"}}
    assert to(topics.ACCEPTED, intake.handle_request(p, json.dumps(verified).encode()))


def refuse(p: Pipeline, request_id: str, **part: Any) -> list[Any]:
    decision = DecisionEvent(
        request_id=request_id,
        decision="refusal",
        ground=part.pop("ground", GROUND),
        reason="Internal assessment notes of an ongoing review.",
        decided_by="op-1",
        **part,
    )
    return decisions.handle_decision(p, dump(decision))


def rejected(out: list[Any]) -> dict[str, Any]:
    [message] = to(topics.REJECTED, out)
    return body(message)


def test_a_held_disclosure_refused_for_one_system_answers_from_the_others(
    pipeline: Pipeline,
) -> None:
    sent = submit(pipeline, "pr-1", verification=PENDING, delivery=WRITTEN)
    assert refuse(pipeline, "pr-1", system="orders") == []
    [entry] = [e for e in pipeline.ledger.timeline("pr-1") if e.action == "refused_in_part"]
    assert entry.detail["system"] == "orders" and entry.detail["ground"] == GROUND
    release(pipeline, sent)

    response = drive(pipeline, "pr-1")
    assert response.status is ResponseStatus.PARTIALLY_COMPLETED
    systems = {s.system: s for s in response.systems}
    assert systems["orders"].outcome is Outcome.REFUSED and systems["orders"].records == 0
    assert systems["crm"].outcome is Outcome.DONE
    [reason] = [r for r in response.reasons if r.code == GROUND]
    assert reason.system == "orders"
    # orders was looked up (its order ids reach shipping), but never asked to disclose
    [action] = [
        t
        for t in pipeline.ledger.tasks("pr-1")
        if t.system == "orders" and not Task.is_lookup_id(t.task_id)
    ]
    assert action.status == "refused" and not action.attempts
    letter = read_package(pipeline.storage, "pr-1")["letter.html"].decode()
    assert appi.POLICY.refusal_codes[GROUND].ja in letter
    assert "Internal assessment notes of an ongoing review." in letter
    assert "Green tea set" not in letter and "3200" not in letter  # Taro's orders
    assert "YT-0001" in letter  # shipping, reached by the order ids, still answers
    assert "taro@example.jp" in letter


def test_a_field_refused_while_the_disclosure_runs_is_withheld_everywhere(
    pipeline: Pipeline,
) -> None:
    submit(pipeline, "pf-1", delivery={"method": "electronic"})
    out = fanout.handle_accepted(pipeline, "pf-1")
    assert refuse(pipeline, "pf-1", fields=["phone", "address"]) == []
    responses = []
    while results := run_tasks(pipeline, out):
        out = [o for raw in results for o in aggregate.handle_result(pipeline, raw)]
        responses += to(topics.RESPONSES, out)
    [message] = responses
    response = body(message)
    assert response["status"] == "partially_completed"
    crm = next(s for s in response["systems"] if s["system"] == "crm")
    assert crm["outcome"] == "refused" and crm["records"] == 1  # disclosed, but in part
    [reason] = [r for r in response["reasons"] if r["code"] == GROUND]
    assert (reason["system"], reason["field"]) == ("crm", "address, phone")

    data = json.loads(read_package(pipeline.storage, "pf-1")["data.json"])
    [row] = next(s for s in data["systems"] if s["system"] == "crm")["tables"]["customers"]
    assert row["email"] == "taro@example.jp" and row["name"] == "山田 太郎"
    assert "phone" not in row and "address" not in row
    text = json.dumps(data, ensure_ascii=False)
    assert "090-1111-2222" not in text and "hanako@example.jp" not in text
    # the other systems' records are whole
    orders = next(s for s in data["systems"] if s["system"] == "orders")
    assert orders["outcome"] == "done" and orders["records"] == 2


@pytest.mark.usefixtures("erasure_key")
def test_parts_that_cannot_be_refused_are_rejected_with_why(pipeline: Pipeline) -> None:
    submit(pipeline, "pe-1", "erasure", grounds=["no_longer_needed"])
    fanout.handle_accepted(pipeline, "pe-1")
    assert rejected(refuse(pipeline, "pe-1", system="crm"))["reason_code"] == ("already_fanned_out")
    submit(pipeline, "pe-2", "erasure", grounds=["no_longer_needed"], verification=PENDING)
    assert rejected(refuse(pipeline, "pe-2", fields=["phone"]))["reason_code"] == (
        "fields_not_refusable"
    )
    unknown = rejected(refuse(pipeline, "pe-2", system="payroll"))
    assert unknown["reason_code"] == "unknown_system" and "crm" in unknown["errors"][0]["msg"]
    ground = rejected(refuse(pipeline, "pe-2", system="crm", ground="too_busy"))
    assert ground["reason_code"] == "unknown_ground" and GROUND in ground["errors"][0]["msg"]
    done = drive(pipeline, "pe-1")
    assert rejected(refuse(pipeline, "pe-1", system="crm"))["reason_code"] == "request_closed"
    assert done.status is ResponseStatus.COMPLETED


@pytest.mark.usefixtures("erasure_key")
def test_a_held_erasure_refused_for_one_system_leaves_its_data(pipeline: Pipeline) -> None:
    sent = submit(pipeline, "ps-1", "erasure", grounds=["no_longer_needed"], verification=PENDING)
    assert refuse(pipeline, "ps-1", system="search_index") == []
    release(pipeline, sent)
    response = drive(pipeline, "ps-1")
    assert response.status is ResponseStatus.PARTIALLY_COMPLETED
    assert {s.system: s.outcome for s in response.systems}["search_index"] is Outcome.REFUSED
    index = pipeline.connectors["search_index"]
    assert index.disclose(TARO).records  # kept, as refused
    assert not pipeline.connectors["crm"].disclose(TARO).records  # erased
    assert pipeline.connectors["crm"].disclose(HANAKO).records  # nobody else touched


def test_a_part_refused_while_the_response_is_built_makes_it_be_built_again(
    pipeline: Pipeline,
) -> None:
    submit(pipeline, "pc-1")
    assert refuse(pipeline, "pc-1", fields=["phone"]) == []
    ledger = pipeline.ledger
    # built before the refusal was seen: not recorded
    assert not ledger.complete("pc-1", "completed", {"reasons": []}, 0, refused_parts=0)
    assert ledger.response("pc-1") is None and ledger.request("pc-1").completed_at is None
    # built with it: recorded
    response = drive(pipeline, "pc-1")
    assert response.status is ResponseStatus.PARTIALLY_COMPLETED
    assert [r.field for r in response.reasons if r.code == GROUND] == ["phone"]
