"""Intake, fan-out and aggregation handlers on a real ledger and real SQLite systems."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from services.datamap import RefusalRule
from services.delivery.claims import ClaimCheck
from services.delivery.storage import LocalStorage
from services.demo.scenario import HANAKO, JIRO, TARO, event
from services.ledger import as_utc
from services.ledger.models import Request
from streams import topics
from streams.agents import aggregate, fanout, intake, respond
from streams.agents.decode import PoisonEvent, parse_result
from streams.context import Pipeline
from streams.records import Accepted, Outcome, ResponseEvent, Task, TaskResult
from tests.fixtures.ledger_reads import rejected_events
from tests.streams.agents.fixtures import accepted, body, drive, run_tasks, to


def submit(p: Pipeline, **kw: Any) -> list[Any]:
    return intake.handle_request(p, json.dumps(event(**kw)).encode())


def opened(p: Pipeline, out: list[Any]) -> list[Task]:
    """The tasks in ``out``, as the runner opens them."""
    tasks = [
        Task.model_validate_json(o.value) for o in out if o.topic.startswith(topics.TASKS_PREFIX)
    ]
    return [p.sealer.open(t) if p.sealer is not None else t for t in tasks]


def with_system(p: Pipeline, system: str, **update: Any) -> Pipeline:
    """The pipeline with one system's data-map entry changed."""
    spec = p.datamap.systems[system].model_copy(update=update)
    systems = {**p.datamap.systems, system: spec}
    return replace(p, datamap=p.datamap.model_copy(update={"systems": systems}))


def test_valid_request_is_accepted_and_sent_to_fanout(pipeline: Pipeline) -> None:
    out = submit(pipeline, request_id="a-1", kind="disclosure", identifiers=TARO)
    assert [(o.topic, Accepted.read(o.value)) for o in out] == [(topics.ACCEPTED, accepted("a-1"))]


def test_malformed_event_is_rejected_without_echoing_input(pipeline: Pipeline) -> None:
    out = intake.handle_request(
        pipeline,
        b'{"request_id": "bad-1", "kind": "x", "subject": {"identifiers": {"email": "p@x.jp"}}}',
    )
    [rejected] = to(topics.REJECTED, out)
    reason = body(rejected)
    assert reason["reason_code"] == "schema_violation"
    assert reason["request_id"] == "bad-1"
    assert "p@x.jp" not in json.dumps(reason["errors"])
    assert rejected_events(pipeline.ledger)[0].reason_code == "schema_violation"


def test_duplicate_request_is_processed_once(pipeline: Pipeline) -> None:
    raw = json.dumps(event("d-1", "disclosure", TARO)).encode()
    intake.handle_request(pipeline, raw)
    drive(pipeline, "d-1")
    again = intake.handle_request(pipeline, raw)
    assert again == []
    assert fanout.handle_accepted(pipeline, "d-1") == []


def test_held_for_fee_then_released(pipeline: Pipeline) -> None:
    unpaid = event("f-1", "disclosure", TARO, fee={"required": True, "paid": False})
    out = intake.handle_request(pipeline, json.dumps(unpaid).encode())
    assert [o.topic for o in out] == [topics.NOTICES]  # held: the principal is told why
    assert pipeline.ledger.request("f-1").hold_reason == "fee_unpaid"
    paid = {**unpaid, "fee": {"required": True, "paid": True}}
    out = intake.handle_request(pipeline, json.dumps(paid).encode())
    assert to(topics.ACCEPTED, out)
    assert drive(pipeline, "f-1").status == "completed"


def test_fanout_first_resolves_the_principal_with_read_only_lookups(pipeline: Pipeline) -> None:
    submit(
        pipeline, request_id="t-1", kind="erasure", identifiers=TARO, grounds=["no_longer_needed"]
    )
    out = fanout.handle_accepted(pipeline, "t-1")
    # only the CRM can be looked up by email; nothing is acted on before the graph is closed
    assert [o.topic for o in out] == [topics.tasks_topic("crm")]
    [task] = opened(pipeline, out)
    assert task.lookup and task.identities == [TARO] and task.changes == []
    tasks = pipeline.ledger.tasks("t-1")
    assert [(t.task_id, t.status) for t in tasks] == [("t-1:crm:lookup:0", "pending")]
    again = fanout.handle_accepted(pipeline, "t-1")  # redelivered: same tasks, no new rows
    assert sorted(o.topic for o in again) == sorted(o.topic for o in out)
    assert len(pipeline.ledger.tasks("t-1")) == 1


def test_actions_are_planned_once_the_graph_is_closed_each_with_its_units(
    pipeline: Pipeline,
) -> None:
    submit(pipeline, request_id="t-2", kind="disclosure", identifiers=TARO)
    out = fanout.handle_accepted(pipeline, "t-2")
    waves = []
    while not any(not t.lookup for t in opened(pipeline, out)):
        waves.append(sorted(t.system for t in opened(pipeline, out)))
        out = [
            o for raw in run_tasks(pipeline, out) for o in aggregate.handle_result(pipeline, raw)
        ]
    assert waves == [["crm"], ["orders"]]  # shipping discovers nothing: never looked up
    sent = {t.system: t for t in opened(pipeline, out)}
    assert sorted(sent) == ["crm", "orders", "search_index", "shipping"]
    assert sent["crm"].identities == [TARO]
    assert [u["customer_id"] for u in sent["orders"].identities] == ["C-1001"]
    assert sorted(u["order_id"] for u in sent["shipping"].identities) == ["O-1", "O-2"]
    assert all(not t.lookup for t in sent.values())


def test_disclosure_response_has_package_and_deadline(pipeline: Pipeline) -> None:
    submit(pipeline, request_id="p-1", kind="disclosure", identifiers=TARO)
    response = drive(pipeline, "p-1")
    assert response.status == "completed"
    assert response.package and response.package.startswith("file://")
    assert response.deadline > response.received_at
    records = {s.system: s.records for s in response.systems}
    assert records == {
        "crm": 1,
        "orders": 2,
        "partners": 0,
        "provision_ledger": 0,
        "search_index": 1,
        "shipping": 1,
    }


def test_redelivered_result_does_not_complete_twice(pipeline: Pipeline) -> None:
    submit(pipeline, request_id="r-1", kind="disclosure", identifiers=TARO)
    drive(pipeline, "r-1")
    pipeline.ledger.mark_published(["r-1"])
    crm = next(t for t in pipeline.ledger.tasks("r-1") if t.system == "crm")
    assert aggregate.handle_result(pipeline, json.dumps(crm.result).encode()) == []
    completions = [e for e in pipeline.ledger.timeline("r-1") if e.action == "completed"]
    assert len(completions) == 1


def test_rule_6_unknown_subject_discloses_no_data_with_a_reason(pipeline: Pipeline) -> None:
    submit(
        pipeline,
        request_id="n-1",
        kind="disclosure",
        identifiers={"email": "nobody@example.jp", "customer_id": "C-0"},
    )
    response = drive(pipeline, "n-1")
    assert response.status == "completed"
    assert [r.code for r in response.reasons] == ["no_data"]


def test_purpose_notification_lists_the_purposes_of_the_systems_holding_data(
    pipeline: Pipeline,
) -> None:
    out = submit(pipeline, request_id="pn-1", kind="purpose_notification", identifiers=TARO)
    assert to(topics.ACCEPTED, out)
    response = drive(pipeline, "pn-1")
    assert response.status == "completed"
    # crm, orders, shipping and the search index hold Taro's data, and the partner log
    # holds records of providing it to partners: their purpose is his too
    assert [p["id"] for p in response.purposes or []] == [
        "customer_account",
        "order_fulfilment",
        "marketing",
        "partner_sharing",
    ]
    # Jiro is a customer too, but nothing of his was provided to a partner
    submit(pipeline, request_id="pn-3", kind="purpose_notification", identifiers=JIRO)
    jiro = drive(pipeline, "pn-3")
    assert "partner_sharing" not in [p["id"] for p in jiro.purposes or []]
    assert "customer_account" in [p["id"] for p in jiro.purposes or []]
    assert pipeline.sealer is not None
    answers = [
        TaskResult.model_validate(t.result) for t in pipeline.ledger.tasks("pn-1") if t.result
    ]
    assert answers and all(not pipeline.sealer.open(r).records for r in answers)
    submit(
        pipeline, request_id="pn-2", kind="purpose_notification", identifiers={"email": "x@y.jp"}
    )
    nobody = drive(pipeline, "pn-2")
    assert (nobody.purposes, [r.code for r in nobody.reasons]) == ([], ["no_data"])


def test_rule_5_refused_request_gets_a_response_with_its_reason(pipeline: Pipeline) -> None:
    out = submit(
        pipeline,
        request_id="x-1",
        kind="disclosure",
        identifiers=TARO,
        verification={"status": "failed"},
    )
    [response] = to(topics.RESPONSES, out)
    refused = ResponseEvent.model_validate(body(response))
    assert refused.status == "refused"
    assert [r.code for r in refused.reasons] == ["identity_not_verified"]


def test_rule_7_correction_reports_old_new_and_missing_fields(pipeline: Pipeline) -> None:
    submit(
        pipeline,
        request_id="c-1",
        kind="correction",
        identifiers=HANAKO,
        correction={
            "changes": [{"field": "phone", "value": "000"}, {"field": "nickname", "value": "Hana"}]
        },
    )
    response = drive(pipeline, "c-1")
    # nickname is held nowhere: the correction was made in part, never "completed"
    assert response.status == "partially_completed"
    assert [r.code for r in response.reasons] == ["field_not_found"]
    assert "nickname" in response.reasons[0].message
    by_field = {(f.field, f.outcome): f.systems for f in response.corrections}
    assert by_field[("phone", Outcome.DONE)] == ["crm"]
    assert by_field[("nickname", Outcome.FIELD_NOT_FOUND)] == ["crm", "orders", "shipping"]
    [row] = pipeline.connectors["crm"].disclose(HANAKO).records
    assert row["phone"] == "000"  # the change is in the system's own data
    [other] = pipeline.connectors["crm"].disclose(TARO).records
    assert other["phone"] != "000"


def test_outcomes_say_where_the_resolve_phase_found_the_principal(pipeline: Pipeline) -> None:
    submit(pipeline, request_id="lu-1", kind="disclosure", identifiers=TARO)
    response = drive(pipeline, "lu-1")
    outcomes = {o.system: o for o in respond.task_outcomes(pipeline, pipeline.ledger.tasks("lu-1"))}
    assert sorted(outcomes) == sorted(s.system for s in response.systems)  # actions only
    assert {s for s, o in outcomes.items() if o.looked_up} == {"crm", "orders"}
    lookups = [t for t in pipeline.ledger.tasks("lu-1") if Task.is_lookup_id(t.task_id)]
    assert sorted(t.system for t in lookups) == ["crm", "orders"]  # kept as evidence
    # nobody: looked up in the CRM, found nowhere
    submit(pipeline, request_id="lu-2", kind="disclosure", identifiers={"email": "nobody@x.jp"})
    drive(pipeline, "lu-2")
    tasks = pipeline.ledger.tasks("lu-2")
    assert not any(o.looked_up for o in respond.task_outcomes(pipeline, tasks))


def test_timed_out_request_is_partial_and_names_the_silent_system(pipeline: Pipeline) -> None:
    submit(pipeline, request_id="to-1", kind="disclosure", identifiers=TARO)
    out = fanout.handle_accepted(pipeline, "to-1")
    while any(t.lookup for t in opened(pipeline, out)):  # the resolve phase completes
        out = [
            o for raw in run_tasks(pipeline, out) for o in aggregate.handle_result(pipeline, raw)
        ]
    crm_only = [raw for raw in run_tasks(pipeline, out) if b'"system":"crm"' in raw]
    aggregate.handle_result(pipeline, crm_only[0])
    [response] = to(topics.RESPONSES, aggregate.time_out(pipeline, "to-1"))
    r = ResponseEvent.model_validate(body(response))
    assert r.status == "partially_completed"
    assert sorted((x.code, x.system) for x in r.reasons) == [
        ("system_timed_out", "orders"),
        ("system_timed_out", "search_index"),
        ("system_timed_out", "shipping"),
    ]
    assert {s.system: s.status for s in r.systems}["crm"] == "ok"


def test_a_request_timed_out_while_resolving_acts_nowhere_and_says_so(pipeline: Pipeline) -> None:
    submit(
        pipeline, request_id="to-2", kind="erasure", identifiers=TARO, grounds=["no_longer_needed"]
    )
    out = fanout.handle_accepted(pipeline, "to-2")
    out = [o for raw in run_tasks(pipeline, out) for o in aggregate.handle_result(pipeline, raw)]
    assert [t.system for t in opened(pipeline, out)] == ["orders"]  # its lookup never answers
    timed_out = aggregate.time_out(pipeline, "to-2")
    assert not [o for o in timed_out if o.topic.startswith(topics.TASKS_PREFIX)]  # nothing sent
    [response] = to(topics.RESPONSES, timed_out)
    r = ResponseEvent.model_validate(body(response))
    assert r.status == "failed"
    status = {s.system: (s.status, s.error) for s in r.systems}
    assert status["crm"][0] == status["orders"][0] == "timed_out"
    assert status["shipping"][0] == "failed" and "lookup in orders" in (status["shipping"][1] or "")
    assert len(r.systems) == len({s.system for s in r.systems})  # lookups are not actions


def test_redelivered_result_resends_the_wave_it_unlocked(pipeline: Pipeline) -> None:
    """The worker recorded the CRM lookup's result and planned the orders lookup, then died
    before sending it."""
    submit(pipeline, request_id="w-1", kind="disclosure", identifiers=TARO)
    out = fanout.handle_accepted(pipeline, "w-1")
    crm = next(raw for raw in run_tasks(pipeline, out) if b'"system":"crm"' in raw)
    unlocked = aggregate.handle_result(pipeline, crm)
    assert [o.topic for o in unlocked] == [topics.tasks_topic("orders")]
    redelivered = aggregate.handle_result(pipeline, crm)  # the message was never committed
    assert topics.tasks_topic("orders") in [o.topic for o in redelivered]
    assert len(pipeline.ledger.tasks("w-1")) == 2  # no task planned twice


@pytest.mark.usefixtures("erasure_key")
def test_a_lookup_recorded_just_before_a_crash_still_unlocks_its_systems_after_a_redrive(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The worker recorded the CRM lookup's result and died; the broker then restarted
    empty, so the result is never delivered again and only a reconcile re-drives the
    request. What the lookup found must still reach the orders database."""
    submit(
        pipeline, request_id="e-1", kind="erasure", identifiers=TARO, grounds=["no_longer_needed"]
    )
    out = fanout.handle_accepted(pipeline, "e-1")
    [crm] = run_tasks(pipeline, out)
    aggregate.record(pipeline, [parse_result(pipeline, crm)])  # and nothing after it
    out = fanout.handle_accepted(pipeline, "e-1")  # ``dsr reconcile``'s redrive
    responses = to(topics.RESPONSES, out)
    while results := run_tasks(pipeline, out):
        out = [o for raw in results for o in aggregate.handle_result(pipeline, raw)]
        responses += to(topics.RESPONSES, out)
    [response] = [ResponseEvent.model_validate(body(o)) for o in responses]
    status = {s.system: (s.status, s.changed) for s in response.systems}
    assert status["orders"] == ("ok", 2), status
    orders = sqlite3.connect(tmp_path / "orders.db")
    try:
        left = orders.execute("SELECT count(*) FROM orders WHERE customer_id = 'C-1001'")
        assert left.fetchone() == (0,), "Taro's orders still name him"
    finally:
        orders.close()


def test_rule_13_a_paper_only_store_turns_a_disclosure_into_a_letter_with_a_reason(
    pipeline: Pipeline,
) -> None:
    paper = with_system(pipeline, "orders", electronic_disclosure=False)
    submit(paper, request_id="fb-1", kind="disclosure", identifiers=TARO)
    response = drive(paper, "fb-1")
    assert response.status == "completed"
    [fallback] = [r for r in response.reasons if r.code == "written_fallback"]
    assert "orders" in fallback.message and "Art. 33(1)" in fallback.message
    assert response.letter and response.letter.endswith("letter.html")
    # a store that finds nothing does not force paper
    submit(paper, request_id="fb-2", kind="disclosure", identifiers={"email": "nobody@x.jp"})
    assert drive(paper, "fb-2").letter is None


@pytest.mark.parametrize(
    ("regulation", "pauses"),
    [("gdpr", True), ("appi", False), ("ccpa", False)],  # CCPA: rule 15, it never pauses
)
def test_rule_1_and_15_an_unverified_request_is_held_and_its_clock_paused_as_configured(
    pipeline: Pipeline, regulation: str, pauses: bool
) -> None:
    rid = f"clk-{regulation}"
    verified = event(rid, "disclosure", TARO, regulation=regulation)
    pending = {**verified, "verification": {"status": "pending"}}
    out = intake.handle_request(pipeline, json.dumps(pending).encode())
    assert to(topics.ACCEPTED, out) == []  # held, not fanned out
    row = pipeline.ledger.request(rid)
    assert row is not None and row.hold_reason == "verification_pending"
    deadline = as_utc(row.deadline_at)
    with pipeline.ledger.session() as s:  # it waited ten days for verification
        s.execute(
            update(Request)
            .where(Request.request_id == rid)
            .values(created_at=as_utc(row.created_at) - timedelta(days=10))
        )
    out = intake.handle_request(pipeline, json.dumps(verified).encode())
    assert [o.topic for o in to(topics.ACCEPTED, out)] == [topics.ACCEPTED]
    moved = as_utc(pipeline.ledger.request(rid).deadline_at) - deadline  # type: ignore[union-attr]
    if pauses:
        assert timedelta(days=10) <= moved < timedelta(days=10, minutes=1)
    else:
        assert moved == timedelta(0)


def test_rule_5_a_data_map_refusal_withholds_one_system_and_says_why(pipeline: Pipeline) -> None:
    rule = {
        "kinds": ["disclosure"],
        "code": "violation_of_other_laws",
        "reason": "Order records are under a court's preservation order.",
    }
    withheld = with_system(pipeline, "orders", refuse=[RefusalRule.model_validate(rule)])
    submit(withheld, request_id="wr-1", kind="disclosure", identifiers=TARO)
    response = drive(withheld, "wr-1")
    assert response.status == "partially_completed"
    [reason] = [r for r in response.reasons if r.system == "orders"]
    assert (reason.code, reason.message) == ("violation_of_other_laws", rule["reason"])
    orders = next(s for s in response.systems if s.system == "orders")
    assert (orders.status, orders.records, orders.reason_code) == (
        "refused",
        0,
        "violation_of_other_laws",
    )
    [task] = [t for t in withheld.ledger.tasks("wr-1") if t.task_id == "wr-1:orders:disclosure:0"]
    assert task.attempts == 0  # never asked (its lookup only resolved identities)


def test_the_ledger_keeps_task_results_sealed_and_the_response_still_has_the_data(
    pipeline: Pipeline,
) -> None:
    submit(pipeline, request_id="seal-1", kind="disclosure", identifiers=TARO)
    response = drive(pipeline, "seal-1")
    assert {s.system: s.records for s in response.systems}["crm"] == 1
    stored = [t.result for t in pipeline.ledger.tasks("seal-1") if t.result]
    assert stored and all(r["sealed"] and r["records"] == [] for r in stored)
    assert TARO["email"] not in json.dumps(stored)


def test_results_sent_by_claim_check_are_read_back_for_the_response(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    claimed = replace(pipeline, claims=ClaimCheck(LocalStorage(tmp_path / "claims"), 64))
    submit(claimed, request_id="claim-1", kind="disclosure", identifiers=TARO)
    response = drive(claimed, "claim-1")
    assert {s.system: s.records for s in response.systems}["crm"] == 1
    stored = [t.result for t in claimed.ledger.tasks("claim-1") if t.result]
    assert stored and all(r["claim"] and r["sealed"] is None for r in stored)


def test_a_claimed_result_a_worker_cannot_read_back_is_poison(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    claimed = replace(pipeline, claims=ClaimCheck(LocalStorage(tmp_path / "claims"), 64))
    submit(claimed, request_id="claim-2", kind="disclosure", identifiers=TARO)
    [raw, *_] = run_tasks(claimed, fanout.handle_accepted(claimed, "claim-2"))
    with pytest.raises(PoisonEvent, match="claimed task result"):
        aggregate.handle_result(replace(pipeline, claims=None), raw)
    elsewhere = ClaimCheck(LocalStorage(tmp_path / "elsewhere"), 64)
    with pytest.raises(PoisonEvent, match="task result claim unusable"):
        aggregate.handle_result(replace(pipeline, claims=elsewhere), raw)
