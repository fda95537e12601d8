"""Truth under faults: a system whose effect is in place counts as done, whatever its
earlier attempts reported, and a late answer sends the request's next revision."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from connectors.dispatch import task_result
from services.demo.scenario import TARO, event
from services.ledger import as_utc
from services.ledger.models import Request
from streams import topics
from streams.agents import aggregate, fanout, intake
from streams.context import Outgoing, Pipeline
from streams.records import ResponseEvent, Task, dump, utcnow
from tests.streams.agents.fixtures import body, run_tasks, to

#: The last system an erasure reaches (``erase_after: [crm]``): nothing waits on it.
LAST = "search_index"


pytestmark = pytest.mark.usefixtures("erasure_key")


def _erase_all_but_last(p: Pipeline, request_id: str) -> tuple[Task, bytes]:
    """Submit an erasure of Taro and run every task (every effect takes place); record
    every result but the last system's. That task and its result, as it came."""
    raw = event(request_id, "erasure", TARO, grounds=["no_longer_needed"])
    intake.handle_request(p, json.dumps(raw).encode())
    out = fanout.handle_accepted(p, request_id)
    held: tuple[Task, bytes] | None = None
    while results := run_tasks(p, out):
        tasks = [Task.model_validate_json(o.value) for o in out if _is_task(o)]
        out = []
        for task, result in zip(tasks, results, strict=True):
            if task.system == LAST and not Task.is_lookup_id(task.task_id):
                held = (task, result)
            else:
                out += aggregate.handle_result(p, result)
    assert held is not None
    return held


def _is_task(o: Outgoing) -> bool:
    return o.topic.startswith(topics.TASKS_PREFIX)


def _rows(home: Path, db: str, sql: str) -> int:
    with sqlite3.connect(home / f"{db}.db") as conn:
        return len(conn.execute(sql, (TARO["email"],)).fetchall())


def _response(out: list[Outgoing]) -> ResponseEvent:
    [response] = to(topics.RESPONSES, out)
    return ResponseEvent.model_validate(body(response))


def test_a_system_that_answers_after_the_timeout_sends_the_next_revision(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    _, late = _erase_all_but_last(pipeline, "late-1")
    assert _rows(tmp_path, "search", "SELECT 1 FROM profile_index WHERE email = ?") == 0
    assert _rows(tmp_path, "crm", "SELECT 1 FROM customers WHERE email = ?") == 0
    first = _response(aggregate.time_out(pipeline, "late-1"))  # its answer comes too late
    assert first.revision == 1 and first.status == "partially_completed"
    assert [(r.code, r.system) for r in first.reasons] == [("system_timed_out", LAST)]

    second = _response(aggregate.handle_result(pipeline, late))
    assert second.revision == 2
    assert second.status == "completed" and second.reasons == []
    assert {s.system: s.status for s in second.systems}[LAST] == "ok"
    assert pipeline.ledger.response("late-1").body["revision"] == 2
    actions = [e.action for e in pipeline.ledger.timeline("late-1")]
    assert actions.count("completed") == 2 and actions.count("late_result") == 1
    # a redelivery of the late answer makes no third revision (at most the unpublished
    # second one is sent again, which the outbox matches on its revision)
    again = to(topics.RESPONSES, aggregate.handle_result(pipeline, late))
    assert all(o.resend and body(o)["revision"] == 2 for o in again)
    assert [e.action for e in pipeline.ledger.timeline("late-1")].count("completed") == 2


def test_an_ok_result_wins_over_an_earlier_failure_of_the_same_task(pipeline: Pipeline) -> None:
    sealed, ok = _erase_all_but_last(pipeline, "late-2")
    task = pipeline.sealer.open(sealed) if pipeline.sealer else sealed
    failed = dump(
        task_result(
            task, utcnow(), 5, status="failed", error="timed out", error_code="retries_exhausted"
        )
    )
    assert _response(aggregate.handle_result(pipeline, failed)).status == "partially_completed"
    # the runner restarted with the broker; the redriven task finds its effect in place
    fixed = _response(aggregate.handle_result(pipeline, ok))
    assert (fixed.revision, fixed.status) == (2, "completed")
    # the older failure, redelivered afterwards, does not undo it
    again = to(topics.RESPONSES, aggregate.handle_result(pipeline, failed))
    assert all(o.resend and body(o)["revision"] == 2 for o in again)
    assert pipeline.ledger.response("late-2").body["status"] == "completed"
    assert [t.status for t in pipeline.ledger.tasks("late-2") if t.system == LAST] == ["ok"]


def test_a_late_lookup_does_not_reopen_a_completed_request(pipeline: Pipeline) -> None:
    raw = event("late-3", "erasure", TARO, grounds=["no_longer_needed"])
    intake.handle_request(pipeline, json.dumps(raw).encode())
    out = fanout.handle_accepted(pipeline, "late-3")
    out = [o for r in run_tasks(pipeline, out) for o in aggregate.handle_result(pipeline, r)]
    [late] = run_tasks(pipeline, out)  # the orders lookup answers only after the timeout
    assert _response(aggregate.time_out(pipeline, "late-3")).status == "failed"
    again = to(topics.RESPONSES, aggregate.handle_result(pipeline, late))
    assert all(o.resend and body(o)["revision"] == 1 for o in again)  # the unpublished one
    assert pipeline.ledger.response("late-3").body["revision"] == 1
    tasks = pipeline.ledger.tasks("late-3")
    lookups = [t.status for t in tasks if t.system == "orders" and Task.is_lookup_id(t.task_id)]
    assert lookups == ["timed_out"]


def test_every_task_carries_its_requests_timeout_so_a_runner_can_skip_it_once_stale(
    pipeline: Pipeline,
) -> None:
    """First-wave and later-wave tasks alike: ``not_after`` is the ledger's timeout (a
    first wave's is set a moment after the ledger's, never before it)."""
    raw = event("stale-1", "erasure", TARO, grounds=["no_longer_needed"])
    intake.handle_request(pipeline, json.dumps(raw).encode())
    out = fanout.handle_accepted(pipeline, "stale-1")
    timeout_at = pipeline.ledger.request("stale-1").timeout_at
    assert timeout_at is not None
    waves = 0
    while tasks := [Task.model_validate_json(o.value) for o in out if _is_task(o)]:
        waves += 1
        for task in tasks:
            assert task.not_after is not None
            lag = (task.not_after - as_utc(timeout_at)).total_seconds()
            assert 0 <= lag < 5 if waves == 1 else lag == 0, (task.task_id, lag)
        out = [o for r in run_tasks(pipeline, out) for o in aggregate.handle_result(pipeline, r)]
    assert waves >= 2, "an erasure of Taro reaches its systems in more than one wave"


def test_tasks_sent_after_the_timeout_get_the_request_timeout_afresh(
    pipeline: Pipeline,
) -> None:
    """The first wave's results were read after the request's timeout (the ledger was
    away): the systems answered in time, so the next wave is planned, not closed, and
    its tasks, and those a redelivered result sends again, carry a new timeout that a
    runner will not find passed."""
    raw = event("behind-1", "erasure", TARO, grounds=["no_longer_needed"])
    intake.handle_request(pipeline, json.dumps(raw).encode())
    first = run_tasks(pipeline, fanout.handle_accepted(pipeline, "behind-1"))
    past = utcnow() - timedelta(seconds=5)
    with pipeline.ledger.session() as s:
        s.execute(update(Request).where(Request.request_id == "behind-1").values(timeout_at=past))
    out = [o for r in first for o in aggregate.handle_result(pipeline, r)]
    row = pipeline.ledger.request("behind-1")
    assert row is not None and row.timeout_at is not None
    renewed = as_utc(row.timeout_at)
    assert renewed >= utcnow() + pipeline.request_timeout - timedelta(seconds=5)
    sent = [Task.model_validate_json(o.value) for o in out if _is_task(o)]
    assert sent and {t.not_after for t in sent} == {renewed}
    [audit] = [e for e in pipeline.ledger.timeline("behind-1") if e.action == "wave_planned"]
    assert audit.detail["timeout_at"] == renewed.isoformat()

    with pipeline.ledger.session() as s:  # behind again; a result comes a second time
        s.execute(update(Request).where(Request.request_id == "behind-1").values(timeout_at=past))
    again = [Task.model_validate_json(o.value) for o in aggregate.handle_result(pipeline, first[0])]
    assert {t.task_id for t in again} == {t.task_id for t in sent}
    assert all(t.not_after is not None and t.not_after > utcnow() for t in again)
    assert pipeline.ledger.overdue_fan_outs() == {}
    # no new wave: the trail says the timeout moved, to when, and for which systems
    [audit] = [e for e in pipeline.ledger.timeline("behind-1") if e.action == "timeout_renewed"]
    row = pipeline.ledger.request("behind-1")
    assert row is not None and row.timeout_at is not None
    assert audit.detail["timeout_at"] == as_utc(row.timeout_at).isoformat()
    assert audit.detail["systems"] == sorted(t.system for t in again)
