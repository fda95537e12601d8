"""The ledger on SQLite and PostgreSQL: idempotent writes, holds, exactly-once completion."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import inspect, text, update

from services.ledger import Arrival, Completion, Ledger, RequestStatus, TaskPlan, as_utc, tasks
from services.ledger.models import Request, Response
from services.ledger.types import Action
from services.rules.policy import after_months
from streams.records import Fee, TaskResult, TaskStatus
from tests.fixtures.ledger_reads import count_by_status, open_task_count, rejected_events
from tests.fixtures.ledger_rows import DEADLINE, dead_letter, dead_letter_row, event, finish


def test_migrations_create_every_table_and_are_repeatable(ledger: Ledger) -> None:
    ledger.migrate()
    tables = set(inspect(ledger.engine).get_table_names())
    assert {"requests", "tasks", "responses", "rejected_events", "audit_log"} <= tables


def test_received_at_is_stored_as_utc(ledger: Ledger) -> None:
    ledger.admit(event(), "proceed", None, DEADLINE)
    row = ledger.request("r-1")
    assert row is not None
    assert row.received_at.replace(tzinfo=None) == datetime(2026, 11, 24, 0, 0)


def test_duplicate_request_is_recorded_once(ledger: Ledger) -> None:
    first = ledger.admit(event(), "proceed", None, DEADLINE)
    again = ledger.admit(event(), "proceed", None, DEADLINE)
    # accepted and not yet fanned out, a duplicate still does nothing: the sweeper, not a
    # re-send, re-drives a request whose fan-out message a crash lost
    assert (first.outcome, again.outcome) == ("new", "duplicate")
    ledger.fan_out("r-1", [], timedelta(seconds=60))
    third = ledger.admit(event(), "proceed", None, DEADLINE)
    assert third.outcome == "duplicate"
    assert count_by_status(ledger) == {"fanned_out": 1}


def test_a_request_admitted_by_two_workers_at_once_is_admitted_once(ledger: Ledger) -> None:
    """The same event admitted by another worker right after this one looked for the
    request (both held its partition in a rebalance): this one records a duplicate,
    never fails on the key."""
    with (
        Ledger(ledger.url) as other,
        _around_first(
            ledger,
            lambda: other.admit(event(), "proceed", None, DEADLINE),
            # its last read before it inserts: on PostgreSQL its hold, in its transaction
            "FROM requests" if ledger.url.startswith("sqlite") else "requests.kind",
        ),
    ):
        admission = ledger.admit(event(), "proceed", None, DEADLINE)
    assert admission.outcome == "duplicate"
    actions = [e.action for e in ledger.timeline("r-1")]
    assert (actions.count("received"), actions.count("duplicate_ignored")) == (1, 1)


def _arrivals(prefix: str) -> list[Arrival]:
    """New requests (one twice, one held then released, one refused), an identical
    re-send of ``{prefix}-old`` and one that would change its subject."""
    paid = {"fee": Fee(paid=True, payment_reference="PAY-1")}
    other = {"subject": {"identifiers": {"email": "b@example.jp"}}}
    a = [
        (event(f"{prefix}-new"), "proceed", None),
        (event(f"{prefix}-held"), "hold", "fee_unpaid"),
        (event(f"{prefix}-new"), "proceed", None),
        (event(f"{prefix}-old"), "proceed", None),
        (event(f"{prefix}-old", **other), "proceed", None),
        (event(f"{prefix}-held").model_copy(update=paid), "proceed", None),
        (event(f"{prefix}-refused"), "refuse", "manifestly_unfounded"),
    ]
    return [Arrival(e, action, reason, DEADLINE, key_id="ops") for e, action, reason in a]


def test_a_batch_is_admitted_in_one_transaction_as_each_alone_would_be(ledger: Ledger) -> None:
    for prefix in ("alone", "batch"):
        ledger.admit(event(f"{prefix}-old"), "proceed", None, DEADLINE, key_id="ops")
    alone = [
        ledger.admit(a.event, a.action, a.reason, a.deadline, key_id=a.key_id)
        for a in _arrivals("alone")
    ]
    statements: list[str] = []
    sa_event.listen(ledger.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    batch = ledger.admit_many(_arrivals("batch"))
    assert (
        [a.outcome for a in batch]
        == [a.outcome for a in alone]
        == [
            "new",
            "new",
            "duplicate",
            "duplicate",
            "conflict",
            "released",
            "new",
        ]
    )
    assert batch == alone
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO REQUESTS")]
    assert len(inserts) == 1  # the three new requests in one statement
    assert sum(s.strip().upper() in ("COMMIT", "BEGIN") for s in statements) <= 2
    for name in ("new", "held", "old", "refused"):
        rows = [ledger.request(f"{prefix}-{name}") for prefix in ("alone", "batch")]
        assert rows[0] is not None and rows[1] is not None
        assert (rows[1].status, rows[1].hold_reason) == (rows[0].status, rows[0].hold_reason)
        assert rows[1].subject_digests == rows[0].subject_digests
        assert ledger.request_event(rows[1]).subject == ledger.request_event(rows[0]).subject
        trails = [
            [(e.action, e.detail.get("key_id")) for e in ledger.timeline(f"{prefix}-{name}")]
            for prefix in ("alone", "batch")
        ]
        assert trails[1] == trails[0], name


def test_an_empty_batch_records_nothing(ledger: Ledger) -> None:
    ledger.audit_many([])
    assert ledger.admit_many([]) == []
    ledger.admit(event(), "proceed", None, DEADLINE)
    assert [e.action for e in ledger.timeline("r-1")] == ["received"]
    assert ledger.fan_out_many({}, timedelta(seconds=60)) == {}
    assert ledger.record_results([]) == []


def test_new_requests_are_sealed_before_the_database_is_locked(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sealing a new request's event may make its data key (a file written and synced):
    on SQLite, whose write lock is the whole database's, another worker can write
    meanwhile."""
    if not ledger.url.startswith("sqlite"):
        pytest.skip("on PostgreSQL a lock is a row's")
    kept, sealed = ledger._kept, []

    def sealing(request_id: str, name: str, value: Any) -> Any:
        other = sqlite3.connect(ledger.url.removeprefix("sqlite:///"), timeout=0.5)
        try:
            other.execute("BEGIN IMMEDIATE")  # a writer's lock: taken now, or refused
            other.rollback()
        finally:
            other.close()
        sealed.append(request_id)
        return kept(request_id, name, value)

    monkeypatch.setattr(ledger, "_kept", sealing)
    arrivals = [Arrival(event(f"s-{i}"), "proceed", None, DEADLINE) for i in range(3)]
    assert [a.outcome for a in ledger.admit_many(arrivals)] == ["new"] * 3
    assert sorted(sealed) == ["s-0", "s-1", "s-2"]


def test_every_re_send_is_audited_with_the_key_that_signed_it(ledger: Ledger) -> None:
    ledger.admit(event(), "proceed", None, DEADLINE, key_id="ops")
    assert ledger.admit(event(), "proceed", None, DEADLINE, key_id="crm").outcome == "duplicate"
    ledger.fan_out("r-1", [], timedelta(seconds=60))
    assert ledger.admit(event(), "proceed", None, DEADLINE, key_id="crm").outcome == "duplicate"
    trail = [(e.action, e.detail.get("key_id")) for e in ledger.timeline("r-1")]
    assert trail == [
        ("received", "ops"),
        ("duplicate_ignored", "crm"),
        ("fanned_out", None),
        ("duplicate_ignored", "crm"),
    ]


def test_held_request_is_released_by_a_later_event(ledger: Ledger) -> None:
    held = ledger.admit(event(), "hold", "fee_unpaid", DEADLINE)
    assert (held.status, held.hold_reason) == (RequestStatus.HELD, "fee_unpaid")
    still = ledger.admit(event(), "hold", "fee_unpaid", DEADLINE)
    assert still.outcome == "still_held"
    released = ledger.admit(event(), "proceed", None, DEADLINE)
    assert (released.outcome, released.status) == ("released", RequestStatus.ACCEPTED)
    actions = [e.action for e in ledger.timeline("r-1")]
    assert actions == ["received", "hold", "still_held", "released"]


def test_a_key_without_release_permission_changes_nothing_in_a_held_request(
    ledger: Ledger,
) -> None:
    ledger.admit(event(), "hold", "fee_unpaid", DEADLINE, key_id="ops")
    paid = event().model_copy(update={"fee": Fee(paid=True, payment_reference="PAY-1")})
    denied = ledger.admit(paid, "proceed", None, DEADLINE, key_id="crm", may_release=False)
    assert (denied.outcome, denied.status) == ("not_permitted", RequestStatus.HELD)
    row = ledger.request("r-1")
    assert row is not None and (row.status, row.hold_reason) == ("held", "fee_unpaid")
    assert not ledger.request_event(row).fee.paid
    # the same event again from that key: a duplicate, the rules do not decide again
    again = ledger.admit(event(), "proceed", None, DEADLINE, key_id="crm", may_release=False)
    assert (again.outcome, again.status) == ("duplicate", RequestStatus.HELD)
    assert [(e.action, e.detail.get("key_id")) for e in ledger.timeline("r-1")] == [
        ("received", "ops"),
        ("hold", "ops"),
        ("duplicate_ignored", "crm"),
    ]


def test_release_with_another_kind_is_a_conflict(ledger: Ledger) -> None:
    ledger.admit(event(), "hold", "verification_pending", DEADLINE)
    other = ledger.admit(
        event(kind="erasure", grounds=["no_longer_needed"]), "proceed", None, DEADLINE
    )
    assert (other.outcome, other.conflicts) == ("conflict", ("grounds", "kind"))
    assert ledger.request("r-1").status == RequestStatus.HELD
    assert ledger.request_event(ledger.request("r-1")).kind == "disclosure"


def _plans(request_id: str = "r-1") -> list[TaskPlan]:
    return [
        TaskPlan(f"{request_id}:crm:disclosure:0", "crm", "disclosure", 0, TaskStatus.PENDING),
        TaskPlan(
            f"{request_id}:orders:disclosure:0", "orders", "disclosure", 0, TaskStatus.PENDING
        ),
        TaskPlan(
            f"{request_id}:logs:disclosure:0",
            "logs",
            "disclosure",
            0,
            TaskStatus.NOT_APPLICABLE,
            "no identifier",
        ),
    ]


def _result(system: str, status: str = "ok", request_id: str = "r-1", **more: Any) -> TaskResult:
    return TaskResult(
        request_id=request_id,
        task_id=f"{request_id}:{system}:disclosure:0",
        system=system,
        kind="disclosure",
        status=status,
        started_at=datetime.now(UTC),
        **more,
    )


@pytest.mark.parametrize("most", [tasks.RECORD_MANY_MAX, 2])
def test_a_batch_records_each_pending_task_with_its_own_result(
    ledger: Ledger, most: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "RECORD_MANY_MAX", most)  # in statements of two tasks, too
    for request_id in ("r-1", "r-2"):
        ledger.admit(event(request_id), "proceed", None, DEADLINE)
        ledger.fan_out(request_id, _plans(request_id), timedelta(seconds=60))
    ledger.record_results([_result("crm"), _result("orders", "failed", error="down")])
    batch = [
        _result("crm", records=[{"email": "late@example.jp"}]),  # redelivered: not again
        _result("crm", request_id="r-2", records=[{"email": "jiro@example.jp"}]),
        _result("orders"),  # a late success over the failure
        _result("orders", "failed", request_id="r-2", error="timeout", attempts=3),
        _result("crm", request_id="r-2", records=[{"email": "other@example.jp"}]),
    ]
    assert [r.first for r in ledger.record_results(batch)] == [False, True, True, True, False]
    stored = {t.task_id: t for rid in ("r-1", "r-2") for t in ledger.tasks(rid)}
    assert stored["r-1:crm:disclosure:0"].result["records"] == []  # the first one's
    assert stored["r-2:crm:disclosure:0"].result["records"] == [{"email": "jiro@example.jp"}]
    assert stored["r-1:orders:disclosure:0"].status == "ok"
    failed = stored["r-2:orders:disclosure:0"]
    assert (failed.status, failed.error, failed.attempts) == ("failed", "timeout", 3)
    assert failed.finished_at is not None
    ok = [e for e in ledger.timeline("r-2") if e.action in ("task_ok", "task_failed")]
    assert sorted(e.action for e in ok) == ["task_failed", "task_ok"]


def test_tasks_are_planned_once_and_results_counted_once(ledger: Ledger) -> None:
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", _plans(), timedelta(seconds=60))
    ledger.fan_out("r-1", _plans(), timedelta(seconds=60))
    assert len(ledger.tasks("r-1")) == 3
    assert open_task_count(ledger, "r-1") == 2
    first = ledger.record_results([_result("crm")])[0]
    assert first.first is True
    assert first.request is not None and [t.status for t in first.tasks if t.system == "crm"] == [
        "ok"
    ]
    assert ledger.record_results([_result("crm")])[0].first is False
    assert open_task_count(ledger, "r-1") == 1


def test_what_a_lookup_found_is_recorded_with_its_result_while_the_request_is_open(
    ledger: Ledger,
) -> None:
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", _plans(), timedelta(seconds=60))
    found = {"r-1": [{"customer_id": "C-1"}]}
    [recorded] = ledger.record_results([_result("crm")], found)
    assert recorded.request is not None  # read after the merge, in the same transaction
    assert ledger.identities(recorded.request) == [{"customer_id": "C-1"}]
    actions = [e.action for e in ledger.timeline("r-1")]
    assert actions[-2:] == ["task_ok", "identifiers_discovered"]
    ledger.complete("r-1", "completed", {"status": "completed", "reasons": []}, 12)
    ledger.record_results([_result("orders")], {"r-1": [{"order_id": "O-1"}]})  # too late
    row = ledger.request("r-1")
    assert row is not None and ledger.identities(row) == [{"customer_id": "C-1"}]


def test_a_batch_of_results_that_fails_midway_records_none_of_them(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash (here, a failed merge) after the results' statement but before the commit
    leaves every task pending: a lookup is never done without what it found."""
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", _plans(), timedelta(seconds=60))

    def killed(*_: object) -> None:
        raise RuntimeError("the worker died here")

    monkeypatch.setattr(type(ledger), "_merge", killed)
    with pytest.raises(RuntimeError, match="died"):
        ledger.record_results([_result("crm"), _result("orders")], {"r-1": [{"c": "C-1"}]})
    assert {t.system: t.status for t in ledger.tasks("r-1")} == {
        "crm": "pending",
        "orders": "pending",
        "logs": "not_applicable",
    }
    assert [e.action for e in ledger.timeline("r-1") if e.action.startswith("task_")] == []


#: A lookup on the CRM that found the customer's id, as another worker records it.
LOOKUP = ([_result("crm")], {"r-1": [{"customer_id": "C-1"}]})


@contextmanager
def _around_first(
    ledger: Ledger,
    meanwhile: Callable[[], object],
    marker: str = "FROM requests",
    *,
    before: bool = False,
) -> Iterator[None]:
    """Run ``meanwhile`` right after ``ledger``'s first statement that has ``marker`` in
    it (by default, the first that reads or locks requests), or right before it."""
    fired: list[str] = []
    hooked = "before_cursor_execute" if before else "after_cursor_execute"

    def hook(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not fired and marker in statement:
            fired.append(statement)
            meanwhile()

    sa_event.listen(ledger.engine, hooked, hook)
    try:
        yield
    finally:
        sa_event.remove(ledger.engine, hooked, hook)
    assert fired, f"no statement has {marker!r}"


def test_a_request_and_its_tasks_are_read_as_of_one_moment(ledger: Ledger) -> None:
    """A lookup's result recorded by another process while ``progress`` reads (the
    sweeper's, a redrive's) shows both its task done and what it found, or neither:
    never the task done with the graph the next wave would be planned from lacking it."""
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", _plans(), timedelta(seconds=60))
    with (
        Ledger(ledger.url) as other,
        _around_first(ledger, lambda: other.record_results(*LOOKUP)),
    ):
        row, read = ledger.progress("r-1")
    assert row is not None
    assert ({t.system: t.status for t in read}["crm"], ledger.identities(row)) == ("pending", [])
    row, read = ledger.progress("r-1")  # and afterwards, both
    assert row is not None
    assert {t.system: t.status for t in read}["crm"] == "ok"
    assert ledger.identities(row) == [{"customer_id": "C-1"}]


def test_a_batch_reads_each_request_as_of_the_same_moment_as_its_tasks(
    ledger: Ledger,
) -> None:
    """Two workers recording results of one request at once (in a rebalance): the one
    that reads first must not see the other's lookup done without what it found."""
    if ledger.url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: no batch commits inside another")
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", _plans(), timedelta(seconds=60))
    with _another_worker_meanwhile(ledger, lambda o: o.record_results(*LOOKUP)):
        [recorded] = ledger.record_results([_result("orders")])
    assert recorded.request is not None
    statuses = {t.system: t.status for t in recorded.tasks}
    assert (statuses["crm"], ledger.identities(recorded.request)) == ("pending", [])
    assert {t.system: t.status for t in ledger.tasks("r-1")}["crm"] == "ok"  # then recorded


def test_two_batches_holding_the_same_requests_never_deadlock(ledger: Ledger) -> None:
    """Two workers recording results of the same two requests at once (in a rebalance),
    each batch with a lookup that found something for a different one of them: one
    batch waits for the other, and both are recorded."""
    _two_open_requests(ledger)
    theirs = [_result("crm"), _result("orders", request_id="r-2")]
    with _another_worker_meanwhile(
        ledger, lambda o: o.record_results(theirs, {"r-1": [{"customer_id": "C-1"}]})
    ) as failed:
        mine = [_result("crm", request_id="r-2"), _result("orders")]
        ledger.record_results(mine, {"r-2": [{"customer_id": "C-2"}]})
    assert failed == []
    assert {t.status for rid in ("r-1", "r-2") for t in ledger.tasks(rid)} == {
        "ok",
        "not_applicable",
    }
    graphs = {rid: ledger.identities(ledger.request(rid)) for rid in ("r-1", "r-2")}
    assert graphs == {"r-1": [{"customer_id": "C-1"}], "r-2": [{"customer_id": "C-2"}]}


def test_completions_and_results_of_the_same_requests_never_deadlock(ledger: Ledger) -> None:
    """A batch of completions and another worker's batch of results, on the same two
    requests at once: one waits for the other, and both are done."""
    _two_open_requests(ledger)
    results = [_result("crm"), _result("crm", request_id="r-2")]
    body = {"status": "completed", "reasons": []}
    with _another_worker_meanwhile(ledger, lambda o: o.record_results(results)) as failed:
        done = ledger.complete_many(
            [Completion(rid, "completed", body, 12, refused_parts=0) for rid in ("r-2", "r-1")]
        )
    assert failed == []
    assert done == {"r-1", "r-2"}
    assert [t.status for rid in ("r-1", "r-2") for t in ledger.tasks(rid) if t.system == "crm"] == [
        "ok",
        "ok",
    ]


def test_two_workers_planning_the_same_wave_plan_it_once(ledger: Ledger) -> None:
    """Two workers planning a request's next wave at once (in a rebalance): each of its
    tasks is recorded once, the wave is audited once, and neither worker fails."""
    if ledger.url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: no wave is planned inside another")
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", _plans(), timedelta(seconds=60))
    wave = [TaskPlan("r-1:search:disclosure:1", "search", "disclosure", 1, TaskStatus.PENDING)]
    with _another_worker_meanwhile(ledger, lambda o: o.add_wave("r-1", wave), "tasks") as failed:
        tasks = ledger.add_wave("r-1", wave)
    assert failed == []
    assert sorted(t.system for t in tasks) == ["crm", "logs", "orders", "search"]
    assert [e.action for e in ledger.timeline("r-1")].count("wave_planned") == 1


def _two_open_requests(ledger: Ledger) -> None:
    if ledger.url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: no batch waits inside another")
    for request_id in ("r-1", "r-2"):
        ledger.admit(event(request_id), "proceed", None, DEADLINE)
        ledger.fan_out(request_id, _plans(request_id), timedelta(seconds=60))


@contextmanager
def _another_worker_meanwhile(
    ledger: Ledger, work: Callable[[Ledger], object], marker: str = "FROM requests"
) -> Iterator[list[Exception]]:
    """Within the block, after ``ledger``'s first statement with ``marker`` in it (by
    default, once it has read or locked requests), another worker runs ``work`` on a
    ledger of its own, and the block goes on once that is done or waits on a lock.
    Yields what ``work`` raised, known after the block."""
    other, pids, failed = Ledger(ledger.url), [], []
    sa_event.listen(other.engine, "connect", lambda c, _: pids.append(c.info.backend_pid))

    def run() -> None:
        try:
            work(other)
        except Exception as e:  # noqa: BLE001 - the test's verdict
            failed.append(e)

    thread = threading.Thread(target=run)

    def meanwhile() -> None:
        thread.start()
        while thread.is_alive() and not _waits_on_a_lock(ledger, pids):
            thread.join(0.01)

    try:
        with _around_first(ledger, meanwhile, marker):
            yield failed
    finally:
        if thread.ident is not None:  # started: it ends once this ledger commits
            thread.join()
        other.close()


def _waits_on_a_lock(ledger: Ledger, pids: list[int]) -> bool:
    with ledger.engine.connect() as conn:
        waiting = conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE pid = ANY(:p) AND wait_event_type = 'Lock'"
            ),
            {"p": pids},
        )
    return bool(waiting)


def test_a_batch_of_results_is_recorded_once_each_in_one_read(ledger: Ledger) -> None:
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", _plans(), timedelta(seconds=60))
    batch = [_result("crm"), _result("orders", "failed"), _result("crm")]  # crm delivered twice
    recorded = ledger.record_results(batch)
    assert [r.first for r in recorded] == [True, True, False]
    assert recorded[0].tasks is recorded[2].tasks  # the request was read once for the batch
    assert {t.system: t.status for t in recorded[0].tasks} == {
        "crm": "ok",
        "orders": "failed",
        "logs": "not_applicable",
    }
    done = [e.action for e in ledger.timeline("r-1") if e.action.startswith("task_")]
    assert sorted(done) == ["task_failed", "task_ok"]  # one audit row a first result


def test_completion_happens_exactly_once(ledger: Ledger) -> None:
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", _plans(), timedelta(seconds=60))
    body = {"status": "completed", "reasons": []}
    assert ledger.complete("r-1", "completed", body, 12) is True
    assert ledger.complete("r-1", "completed", body, 12) is False
    assert [r.request_id for r in ledger.unpublished_responses()] == ["r-1"]
    ledger.mark_published(["r-1"])
    assert ledger.unpublished_responses() == []
    assert ledger.request("r-1").status == "completed"


def test_a_batch_of_notices_is_read_as_of_one_moment(ledger: Ledger) -> None:
    """A notice recorded as sent by another worker while a batch is read is either seen
    with the rest or not at all: each notice is built from one state of the ledger."""
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", _plans(), timedelta(seconds=60))
    body = {"status": "completed", "reasons": []}
    assert ledger.complete("r-1", "completed", body, 12) is True
    ledger.audit("r-1", "notices", Action.NOTIFIED, notice_id="n-1")

    def sent_meanwhile(other: Ledger) -> None:
        other.audit("r-1", "notices", Action.NOTIFIED, notice_id="n-2")

    with Ledger(ledger.url) as other, _around_first(ledger, lambda: sent_meanwhile(other)):
        read = ledger.notice_reads(["r-1", "r-unknown"], ["r-1"])
    assert list(read.requests) == ["r-1"]
    assert read.responses["r-1"].body == body
    assert read.sent == {("r-1", "n-1")}
    again = ledger.notice_reads(["r-1"], [])  # and afterwards, both; no response asked
    assert (again.responses, again.sent) == ({}, {("r-1", "n-1"), ("r-1", "n-2")})


def test_responses_a_lost_broker_held_are_marked_unsent_and_no_others(ledger: Ledger) -> None:
    body = {"status": "completed", "reasons": []}
    for rid in ("before", "held", "old"):
        ledger.admit(event(rid), "proceed", None, DEADLINE)
        ledger.fan_out(rid, _plans(rid), timedelta(seconds=60))
        assert ledger.complete(rid, "completed", body, 12) is True
    now = datetime.now(UTC)
    with ledger.session() as s:  # when each was sent, and when "old" completed
        for rid, sent in (("before", now - timedelta(hours=1)), ("held", now), ("old", now)):
            s.execute(update(Response).where(Response.request_id == rid).values(published_at=sent))
        s.execute(
            update(Response)
            .where(Response.request_id == "old")
            .values(created_at=now - timedelta(days=8))
        )
    started = now - timedelta(minutes=5)  # the lost broker's start
    assert ledger.unpublish(started, now - timedelta(days=7)) == 1
    assert [r.request_id for r in ledger.unpublished_responses()] == ["held"]
    assert ledger.unpublish(started, now - timedelta(days=7)) == 0  # nothing twice


def test_the_open_requests_changed_since_a_moment_are_those_and_no_others(
    ledger: Ledger,
) -> None:
    """What a lost log may have held notices for: open requests (held, accepted, fanned
    out) admitted or changed since, not those answered, nor those untouched since."""
    for rid, action, reason in [
        ("untouched", "proceed", None),
        ("extended", "proceed", None),
        ("held", "hold", "fee_unpaid"),
        ("accepted", "proceed", None),
        ("fanned", "proceed", None),
        ("answered", "proceed", None),
    ]:
        ledger.admit(event(rid), action, reason, DEADLINE)
    since = datetime.now(UTC) - timedelta(minutes=1)
    with ledger.session() as s:  # these two admitted before the moment, the others after
        s.execute(
            update(Request)
            .where(Request.request_id.in_(["untouched", "extended"]))
            .values(updated_at=since - timedelta(minutes=5))
        )
    ledger.fan_out("fanned", _plans("fanned"), timedelta(seconds=60))
    ledger.fan_out("answered", _plans("answered"), timedelta(seconds=60))
    assert ledger.complete("answered", "completed", {"status": "completed"}, 12) is True
    assert ledger.extend("extended", "many systems", "op", lambda d: d + timedelta(days=30))[0]
    changed = ledger.open_changed_since(since)
    assert sorted(r.request_id for r in changed) == ["accepted", "extended", "fanned", "held"]
    assert {r.request_id: r.status for r in changed}["held"] == RequestStatus.HELD
    assert ledger.open_changed_since(datetime.now(UTC) + timedelta(seconds=1)) == []


def test_untold_requests_are_those_sent_neither_an_acknowledgement_nor_their_response(
    ledger: Ledger,
) -> None:
    arrived = {}  # each at its own minute, to tell them apart in what comes back
    for i, (rid, regulation) in enumerate(
        [
            ("acknowledged", "ccpa"),
            ("other-notice", "ccpa"),
            ("appi", "appi"),
            ("answered", "ccpa"),
            ("answered-told", "ccpa"),
            ("answered-long-ago", "ccpa"),
        ]
    ):
        arrived[rid] = datetime(2026, 11, 24, 9, i, tzinfo=UTC)
        request = event(rid, regulation=regulation, received_at=arrived[rid].isoformat())
        ledger.admit(request, "proceed", None, DEADLINE)
    for rid in ("answered", "answered-told", "answered-long-ago"):
        ledger.fan_out(rid, _plans(rid), timedelta(seconds=60))
        assert ledger.complete(rid, "completed", {"status": "completed"}, 12) is True
    with ledger.session() as s:
        s.execute(
            update(Request)
            .where(Request.request_id == "answered-long-ago")
            .values(completed_at=datetime.now(UTC) - timedelta(days=40))
        )
    for rid, purpose in [("acknowledged", "acknowledgement"), ("answered-told", "response")]:
        ledger.audit(rid, "notices", Action.NOTIFIED, notice_id=rid, purpose=purpose)
    ledger.audit("other-notice", "notices", Action.NOTIFIED, notice_id="h", purpose="hold")
    ledger.audit("other-notice", "notices", Action.RECEIVED, purpose="acknowledgement")
    since = datetime.now(UTC) - timedelta(days=30)
    untold = [("ccpa", arrived["other-notice"]), ("ccpa", arrived["answered"])]
    assert sorted(ledger.untold(["ccpa"], since)) == untold
    assert sorted(ledger.untold(["ccpa", "appi"], since)) == [("appi", arrived["appi"]), *untold]


def _expire_lease(ledger: Ledger, request_id: str) -> None:
    """The lease's end passes, as when its holder died and no longer renews it."""
    with ledger.session() as s:
        s.execute(
            update(Response)
            .where(Response.request_id == request_id)
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )


def test_a_response_is_sent_again_only_once_its_senders_lease_runs_out(ledger: Ledger) -> None:
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", _plans(), timedelta(seconds=60))
    ledger.complete("r-1", "completed", {"status": "completed", "reasons": []}, 12)
    # the completing worker holds it: no one else may send it, however long its send takes
    assert ledger.claim_responses(["r-1"]) == []
    assert ledger.unpublished_responses(unleased=True) == []
    _expire_lease(ledger, "r-1")
    assert ledger.renew_leases(["r-1"]) == 1  # the holder still sending keeps it
    assert ledger.claim_responses(["r-1"]) == []
    _expire_lease(ledger, "r-1")  # it died
    assert [r.request_id for r in ledger.unpublished_responses(unleased=True)] == ["r-1"]
    assert ledger.claim_responses(["r-1", "r-1"]) == ["r-1"]  # taken once
    assert ledger.claim_responses(["r-1"]) == []
    ledger.mark_published(["r-1"])
    _expire_lease(ledger, "r-1")
    assert ledger.claim_responses(["r-1"]) == []  # sent: nothing to take
    assert ledger.renew_leases(["r-1"]) == 0


def test_a_redriven_task_reopens_its_completed_request_once(ledger: Ledger) -> None:
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", _plans(), timedelta(seconds=60))
    ledger.record_results([_result("crm")])[0]
    ledger.record_results([_result("orders", "failed")])[0]
    assert ledger.complete("r-1", "partially_completed", {"reasons": []}, 12)
    letter = dead_letter(ledger, "r-1", "r-1:orders:disclosure:0")

    assert ledger.reopen_task("r-1:crm:disclosure:0", letter, timedelta(60)) == (
        "the task is ok, not failed"
    )
    assert ledger.reopen_task("r-1:orders:disclosure:0", letter, timedelta(seconds=60)) is None
    row = ledger.request("r-1")
    assert (row.status, row.revision, row.completed_at) == ("fanned_out", 2, None)
    assert ledger.response("r-1") is None  # the next completion writes revision 2
    assert open_task_count(ledger, "r-1") == 1
    assert ledger.reopen_task("r-1:orders:disclosure:0", letter, timedelta(60)) == (
        "already redriven"
    )
    # the redriven task's new result completes the request again, once
    assert ledger.record_results([_result("orders")])[0].first is True
    assert ledger.complete("r-1", "completed", {"reasons": []}, 30) is True
    assert ledger.complete("r-1", "completed", {"reasons": []}, 30) is False
    [redriven] = [e for e in ledger.timeline("r-1") if e.action == "redriven"]
    assert redriven.detail["superseded"] == {"status": "partially_completed", "revision": 1}
    assert redriven.detail["was"] == "failed"
    assert ledger.redrives() == {"orders": 1}
    assert ledger.redrives(since=datetime.now(UTC) + timedelta(minutes=1)) == {}


def test_a_redrive_leaves_alone_a_task_that_succeeded_meanwhile(ledger: Ledger) -> None:
    """A late ``ok`` recorded by another worker after a redrive read its task failed:
    the task keeps that result, and the redrive claims nothing and says why."""
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", _plans(), timedelta(seconds=60))
    ledger.record_results([_result("orders", "failed")])
    letter = dead_letter(ledger, "r-1", "r-1:orders:disclosure:0")
    late = [_result("orders", records=[{"order_id": "O-1"}])]
    with (
        Ledger(ledger.url) as other,
        _around_first(ledger, lambda: other.record_results(late), "FROM tasks"),
    ):
        why_not = ledger.reopen_task("r-1:orders:disclosure:0", letter, timedelta(seconds=60))
    assert why_not == "the task is ok, not failed"
    [orders] = [t for t in ledger.tasks("r-1") if t.system == "orders"]
    assert (orders.status, orders.result["records"]) == ("ok", [{"order_id": "O-1"}])
    assert ledger.reopen_task("r-1:orders:disclosure:0", letter, timedelta(60)) == (
        "the task is ok, not failed"  # the letter was not claimed: nothing was redriven
    )
    assert ledger.redrives() == {}


def test_a_letter_recorded_by_two_workers_at_once_is_kept_once(ledger: Ledger) -> None:
    """The same dead letter recorded by another worker just before this one writes it
    (both held ``dsr.deadletter`` in a rebalance): this one finds it there, and neither
    fails on the key."""
    ledger.admit(event(), "proceed", None, DEADLINE)
    letter = dead_letter_row("r-1", "r-1:orders:disclosure:0")
    with (
        Ledger(ledger.url) as other,
        _around_first(
            ledger,
            lambda: other.record_dead_letter(dead_letter_row("r-1", letter.task_id), {}),
            "INSERT INTO dead_letters",
            before=True,
        ),
    ):
        assert ledger.record_dead_letter(letter, {}) is False
    assert [d.id for d in ledger.dead_letters()] == [letter.id]
    actions = [e.action for e in ledger.timeline("r-1")]
    assert actions.count("dead_lettered") == 1


def test_an_event_is_claimed_for_redrive_once(ledger: Ledger) -> None:
    first, second = dead_letter(ledger, None, None, "a"), dead_letter(ledger, None, None, "b")
    assert ledger.claim_redrive(first, None, "aggregate") is None
    assert ledger.claim_redrive(first, None, "aggregate") == "already redriven"
    assert ledger.claim_redrive(second, None, "aggregate") is None
    assert ledger.claim_redrive("dsr.deadletter:0:4", None, "aggregate") == (
        "the ledger has no such letter"
    )


def test_a_stalled_accepted_request_is_claimed_once_per_interval(ledger: Ledger) -> None:
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.admit(event("r-2"), "proceed", None, DEADLINE)
    ledger.fan_out("r-2", [], timedelta(seconds=60))  # fanned out: not stalled
    assert ledger.claim_stalled_accepted(timedelta(seconds=30)) == []  # too recent
    assert ledger.claim_stalled_accepted(timedelta(seconds=-1)) == ["r-1"]
    # claimed just now: not again until the interval has passed since the claim
    assert ledger.claim_stalled_accepted(timedelta(seconds=5)) == []


def test_an_open_request_is_extended_once_and_a_closed_one_never(ledger: Ledger) -> None:
    two_months = after_months(2)
    assert ledger.extend("r-1", "busy", "op", two_months) == ("unknown_request", None)
    ledger.admit(event(), "proceed", None, DEADLINE)
    assert ledger.extend("r-1", "busy", "op", None) == ("extension_not_available", DEADLINE)
    outcome, deadline = ledger.extend("r-1", "complex request", "op-7", two_months)
    assert (outcome, deadline) == ("extended", datetime(2027, 2, 8, tzinfo=UTC))
    row = ledger.request("r-1")
    assert as_utc(row.deadline_at) == deadline
    assert row.extensions[0]["reason"] == "complex request"
    assert ledger.extend("r-1", "again", "op", two_months)[0] == "already_extended"
    [audit] = [e for e in ledger.timeline("r-1") if e.action == "extended"]
    assert audit.actor == "operator:op-7" and audit.detail["previous_deadline"].startswith(
        "2026-12-08"
    )
    ledger.admit(event("r-2"), "proceed", None, DEADLINE)
    ledger.fan_out("r-2", [], timedelta(seconds=60))
    ledger.complete("r-2", "completed", {"reasons": []}, 5)
    assert ledger.extend("r-2", "late", "op", two_months)[0] == "request_closed"


def test_overdue_requests_time_out_their_pending_tasks(ledger: Ledger) -> None:
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", _plans(), timedelta(seconds=-1))
    assert list(ledger.overdue_fan_outs()) == ["r-1"]
    assert ledger.time_out_tasks("r-1") == 2
    assert {t.status for t in ledger.tasks("r-1")} == {"timed_out", "not_applicable"}


def test_rejected_events_keep_a_hash_not_the_content(ledger: Ledger) -> None:
    ledger.record_rejected("invalid_json", [{"msg": "x"}], b"{secret@example.jp", None)
    [row] = rejected_events(ledger)
    assert row.reason_code == "invalid_json"
    assert len(row.raw_sha256) == 64
    assert "secret" not in str(row.errors)


def test_a_rejected_message_read_again_is_recorded_once(ledger: Ledger) -> None:
    """The same event read at the same place is one message, read again (a batch handled
    again after a crash or an outage); sent again (elsewhere in the log), or read from
    nowhere known, it counts."""
    raw, here, later = b'{"request_id": "bad-1"', "dsr.requests/3/120", "dsr.requests/3/121"
    assert ledger.record_rejected("invalid_json", [], raw, "bad-1", here)
    assert not ledger.record_rejected("invalid_json", [], raw, "bad-1", here)
    assert ledger.record_rejected("invalid_json", [], raw, "bad-1", later)
    assert ledger.record_rejected("invalid_json", [], raw, "bad-1")
    assert ledger.record_rejected("invalid_json", [], raw, "bad-1")
    assert [r.place for r in rejected_events(ledger)] == [here, later, None, None]
    audits = [e for e in ledger.timeline("bad-1") if e.action == "rejected"]
    assert len(audits) == 4


def test_dashboard_reads_return_recent_work_with_its_timings(ledger: Ledger) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    finish(ledger, "r-1", {"crm": "ok", "erp": "failed"}, took=0.25)
    ledger.complete("r-1", "partially_completed", {"reasons": []}, latency_ms=10)
    ledger.admit(event("r-2"), "hold", "fee_unpaid", DEADLINE)

    (done,) = ledger.finished_requests(since)
    assert (done.kind, done.status) == ("disclosure", "partially_completed")
    assert done.completed_at >= done.created_at
    tasks = {t.system: t for t in ledger.finished_tasks(since)}
    assert {s: t.status for s, t in tasks.items()} == {"crm": "ok", "erp": "failed"}
    started = tasks["crm"].started_at
    assert started is not None  # read out of the stored result
    assert abs((tasks["crm"].finished_at - started).total_seconds() - 0.25) < 0.01
    assert ledger.finished_requests(datetime.now(UTC) + timedelta(seconds=1)) == []

    (held,) = ledger.open_requests()
    assert (held.request_id, held.status, held.hold_reason) == ("r-2", "held", "fee_unpaid")
    assert held.waiting_on == []


def test_open_requests_name_the_systems_they_wait_on(ledger: Ledger) -> None:
    ledger.admit(event("r-1"), "proceed", None, DEADLINE + timedelta(days=1))
    plans = [TaskPlan(f"r-1:{s}", s, "disclosure", 0, TaskStatus.PENDING) for s in ("b", "a")]
    ledger.fan_out("r-1", plans, timedelta(seconds=60))
    ledger.admit(event("r-2"), "proceed", None, DEADLINE)
    rows = ledger.open_requests()
    assert [(r.request_id, r.waiting_on) for r in rows] == [("r-2", []), ("r-1", ["a", "b"])]


def test_migrations_match_the_models(ledger: Ledger) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from services.ledger.models import Base

    with ledger.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_rule_12_every_decision_is_audited_and_kept_at_least_24_months(ledger: Ledger) -> None:
    ledger.admit(event("a-1"), "hold", "verification_pending", DEADLINE)
    ledger.admit(event("a-1"), "proceed", None, DEADLINE)
    ledger.extend("a-1", "many systems", "op-1", after_months(2))
    ledger.admit(event("a-2"), "refuse", "identity_not_verified", DEADLINE)
    trail = {(e.request_id, e.action): e for r in ("a-1", "a-2") for e in ledger.timeline(r)}
    assert set(trail) >= {
        ("a-1", "received"),
        ("a-1", "hold"),
        ("a-1", "released"),
        ("a-1", "extended"),
        ("a-2", "refuse"),
    }
    # who, when and why, on every one of them
    assert all(e.actor and e.at for e in trail.values())
    assert trail["a-1", "hold"].detail["reason_code"] == "verification_pending"
    assert trail["a-1", "extended"].actor == "operator:op-1"
    assert trail["a-2", "refuse"].detail["reason_code"] == "identity_not_verified"

    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="kept at least"):
        ledger.purge_audit(now - timedelta(days=700), "op-1")  # under 24 months
    assert len(ledger.timeline("a-1")) >= 4  # nothing went
    assert ledger.purge_audit(now - timedelta(days=800), "op-1", now=now) == 0
    # in 25 months, today's entries may go, and the purge leaves its own trace
    later = now + timedelta(days=800)
    assert ledger.purge_audit(now + timedelta(seconds=1), "op-1", now=later) >= 7
    assert ledger.timeline("a-1") == []


def test_a_batch_of_completions_completes_each_open_request_once(ledger: Ledger) -> None:
    for request_id in ("r-1", "r-2", "r-3"):
        ledger.admit(event(request_id), "proceed", None, DEADLINE)
        ledger.fan_out(request_id, [], timedelta(seconds=60))
    first = {"status": "completed", "reasons": [{"code": "first"}]}
    assert ledger.complete("r-3", "completed", first, 7)
    batch = [
        Completion("r-1", "partially_completed", {"reasons": [{"code": "a"}]}, 12, 0),
        # a part was refused since this response was built: it is built again instead
        Completion("r-2", "completed", {"reasons": []}, 13, refused_parts=1),
        Completion("r-3", "completed", {"reasons": [{"code": "again"}]}, 14),
    ]
    assert ledger.complete_many(batch) == {"r-1"}
    assert ledger.response("r-1").body == {"reasons": [{"code": "a"}]}  # type: ignore[union-attr]
    assert ledger.response("r-2") is None and ledger.request("r-2").completed_at is None  # type: ignore[union-attr]
    assert ledger.response("r-3").body == first  # type: ignore[union-attr]
    [done] = [e for e in ledger.timeline("r-1") if e.action == "completed"]
    assert done.detail == {
        "status": "partially_completed",
        "reason_codes": ["a"],
        "latency_ms": 12,
    }
    assert [e.detail["latency_ms"] for e in ledger.timeline("r-3") if e.action == "completed"] == [
        7
    ]
    assert ledger.complete_many(batch) == set()


def test_a_request_twice_in_a_batch_of_completions_is_completed_once(ledger: Ledger) -> None:
    for request_id in ("r-1", "r-2", "r-3"):
        ledger.admit(event(request_id), "proceed", None, DEADLINE)
        ledger.fan_out(request_id, [], timedelta(seconds=60))
    assert ledger.park("r-3", "aggregate", "poison", "test")
    batch = [
        Completion("r-1", "completed", {"reasons": []}, 5, refused_parts=2),  # stale: skipped
        Completion("r-2", "refused", {"reasons": [{"code": "r2"}]}, 21),
        Completion("r-1", "partially_completed", {"reasons": [{"code": "r1"}]}, 11, 0),
        Completion("r-1", "completed", {"reasons": []}, 12),  # completed above: not again
        Completion("r-3", "completed", {"reasons": []}, 13),  # parked: an operator decides
    ]
    assert ledger.complete_many(batch) == {"r-1", "r-2"}
    rows = {rid: ledger.request(rid) for rid in ("r-1", "r-2", "r-3")}
    assert {rid: (row.status, row.latency_ms) for rid, row in rows.items()} == {  # type: ignore[union-attr]
        "r-1": ("partially_completed", 11),
        "r-2": ("refused", 21),
        "r-3": ("parked", None),
    }
    assert ledger.response("r-1").body == {"reasons": [{"code": "r1"}]}  # type: ignore[union-attr]
    assert ledger.response("r-3") is None
    completed = {rid: [e for e in ledger.timeline(rid) if e.action == "completed"] for rid in rows}
    assert {rid: len(entries) for rid, entries in completed.items()} == {
        "r-1": 1,
        "r-2": 1,
        "r-3": 0,
    }


def test_results_are_recorded_exactly_as_reported(ledger: Ledger) -> None:
    """Whatever a system's data holds (quotes, backslashes, other scripts, JSON-like
    text), its result is kept as reported, and a task's times keep their instant."""
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", _plans(), timedelta(seconds=60))
    records = [
        {"name": '山田 "太郎" \\ O\'Brien', "note": '{"not": "json"}', "tags": ["a", None, 3]},
        {"name": "\u00e9\u0301\U0001f600", "null": None, "nested": {"x": [1.5, True]}},
    ]
    finished = datetime(2026, 12, 6, 9, 30, 15, 123456, tzinfo=UTC)
    error = 'timeout after 30 s; said: "エラー" \\n'
    ledger.record_results(
        [
            _result("crm", records=records, finished_at=finished),
            _result("orders", "failed", error=error, attempts=2, finished_at=finished),
        ]
    )
    stored = {t.system: t for t in ledger.tasks("r-1")}
    assert stored["crm"].result["records"] == records
    assert as_utc(stored["crm"].finished_at) == finished
    failed = stored["orders"]
    assert (failed.status, failed.error, failed.attempts) == ("failed", error, 2)
    assert stored["logs"].status == "not_applicable" and stored["logs"].error == "no identifier"
