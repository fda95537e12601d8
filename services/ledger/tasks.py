"""Tasks: a request fanned out in waves, its results recorded, and the request completed
once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, update
from sqlalchemy.orm import Session

from services.crypto.digests import subject_digests
from services.ledger.base import (
    DISCOVERED_FIELD,
    SEND_LEASE,
    LedgerBase,
    _audit_row,
    _reopen,
    _result_audit,
    _result_row,
    _rowcount,
    in_session,
)
from services.ledger.models import OPEN_STATUSES, Request, RequestStatus, Task
from services.ledger.statements import (
    COMPLETE,
    FAN_OUT,
    INSERT_AUDITS,
    INSERT_NEW_TASKS,
    INSERT_RESPONSE,
    RECORD_MANY_MAX,
    SELECT_REQUEST,
    SELECT_REQUESTS,
    SELECT_TASKS,
    SELECT_TASKS_OF,
    SUPERSEDE_RESULT,
    UPDATE_GRAPH,
    completable,
    execute_many,
    hold_requests,
    insert_new,
    load,
    load_one,
    record_many,
    requests_by_id,
)
from services.ledger.types import Action, Completion, Recorded, TaskPlan
from streams.records import Task as TaskMessage
from streams.records import TaskResult, TaskStatus, merge_units, utcnow


class Tasks(LedgerBase):
    """Fanning out, recording results, completing once."""

    def fan_out(self, request_id: str, plans: Sequence[TaskPlan], timeout: timedelta) -> list[Task]:
        """Record the first wave of a request's tasks, once each, and mark it fanned out,
        timing out ``timeout`` from now. Returns all its tasks as they now are."""
        return self.fan_out_many({request_id: plans}, timeout)[request_id]

    def fan_out_many(
        self, plans: Mapping[str, Sequence[TaskPlan]], timeout: timedelta
    ) -> dict[str, list[Task]]:
        """``fan_out`` for each request ``plans`` names, in one transaction (a few
        statements for them all). Returns each request's tasks as they now are."""
        now = utcnow()
        ids = list(plans)
        with self.engine.begin() as conn:
            new = self._plan(conn, plans, now)
            params = {"ids": ids, "timeout_at": now + timeout, "updated_at": now}
            fanned = set(conn.scalars(FAN_OUT, params))
            audits = [
                _audit_row(rid, "fanout", Action.FANNED_OUT, **_planned(new[rid]))
                for rid in ids
                if rid in fanned
            ]
            execute_many(conn, INSERT_AUDITS, audits)
            return _by_request(ids, load(conn, SELECT_TASKS_OF, {"ids": ids}, Task))

    def add_wave(
        self, request_id: str, plans: Sequence[TaskPlan], timeout_at: datetime | None = None
    ) -> list[Task]:
        """Record the tasks a later wave adds (the systems the graph now unlocks), once
        each, and the request's new ``timeout_at`` if it is given: audited with the wave,
        or, with none, as renewed for the tasks still pending. Returns all the request's
        tasks as they now are."""
        with self.engine.begin() as conn:
            new = self._plan(conn, {request_id: plans}, utcnow())[request_id]
            if timeout_at is not None:
                conn.execute(
                    update(Request)
                    .where(Request.request_id == request_id)
                    .values(timeout_at=timeout_at)
                )
            if new:
                wave = max(p.wave for p in new)
                detail = _planned(new)
                if timeout_at is not None:
                    detail["timeout_at"] = timeout_at.isoformat()
                self._audit(conn, request_id, "fanout", Action.WAVE_PLANNED, wave=wave, **detail)
            tasks = load(conn, SELECT_TASKS, {"id": request_id}, Task)
            if timeout_at is not None and not new:
                self._audit(
                    conn,
                    request_id,
                    "aggregate",
                    Action.TIMEOUT_RENEWED,
                    timeout_at=timeout_at.isoformat(),
                    systems=sorted(t.system for t in tasks if t.status == TaskStatus.PENDING),
                )
            return tasks

    @staticmethod
    def _plan(
        conn: Connection, plans: Mapping[str, Sequence[TaskPlan]], now: datetime
    ) -> dict[str, list[TaskPlan]]:
        """Record the plans not recorded yet; those recorded now, by request."""
        rows = [_task_row(rid, p, now) for rid, ps in plans.items() for p in ps]
        added = insert_new(conn, INSERT_NEW_TASKS, rows)
        return {rid: [p for p in ps if p.task_id in added] for rid, ps in plans.items()}

    def _merge(self, conn: Connection, row: Request, found: Sequence[Mapping[str, str]]) -> None:
        """Add identity units a connector found to the graph of ``row``, which ``conn``'s
        transaction holds; ``row`` is brought up to date too. The request's own
        identifiers are never among the units."""
        request_id = row.request_id
        known = self.identities(row)
        merged = merge_units(known, found)
        if len(merged) == len(known):
            return
        added = merged[len(known) :]
        row.discovered = self._kept(request_id, DISCOVERED_FIELD, merged)
        digests = set().union(*(subject_digests(u) for u in added))
        row.subject_digests = sorted(set(row.subject_digests or []) | digests)
        conn.execute(
            UPDATE_GRAPH,
            {"id": request_id, "graph": row.discovered, "digests": row.subject_digests},
        )
        names = sorted({name for unit in added for name in unit})
        self._audit(
            conn, request_id, "fanout", Action.IDENTIFIERS_DISCOVERED, identifiers=names
        )  # names only, never values

    def progress(self, request_id: str) -> tuple[Request | None, list[Task]]:
        """A request and all its tasks, as they were at one moment."""
        with self._snapshot() as conn:
            row = load_one(conn, SELECT_REQUEST, {"id": request_id}, Request)
            tasks = load(conn, SELECT_TASKS, {"id": request_id}, Task) if row is not None else []
            return row, tasks

    def tasks(self, request_id: str) -> list[Task]:
        with self._single.begin() as conn:
            return load(conn, SELECT_TASKS, {"id": request_id}, Task)

    def record_results(
        self,
        results: Sequence[TaskResult],
        found: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
    ) -> list[Recorded]:
        """``record_result`` for a batch, in one transaction: each task's first result is
        stored (a later one in the batch, or a redelivery, is not ``first``), the identity
        units the lookups ``found`` (by request id) join the graph of each request still
        open, then each request of the batch is read once with its tasks.

        The units are merged in the same transaction as the results, so a lookup is
        never recorded as done without what it found: after a crash, a result the broker
        lost is not delivered again, and a redrive only has the ledger to go by."""
        ids = sorted({r.request_id for r in results})
        with self.engine.begin() as conn:
            # Every request of the batch is held before anything is written: another
            # worker's batch on the same requests (in a rebalance) commits before this one
            # reads them or waits until it commits. Neither sees a lookup done without
            # what it found, and, held in one order, the two never deadlock.
            rows = hold_requests(conn, {*ids, *(found or ())})
            firsts = _record(conn, results)
            late = [i for i, r in enumerate(results) if not firsts[i] and r.status == "ok"]
            if late:  # rare: the ORM's unit of work reopens what they supersede
                with in_session(conn) as s:
                    for i in late:
                        firsts[i] = self._supersede(s, results[i])
                rows = requests_by_id(conn, SELECT_REQUESTS, ids)
            audits = [_result_audit(r) for r, first in zip(results, firsts, strict=True) if first]
            execute_many(conn, INSERT_AUDITS, audits)
            for request_id, units in (found or {}).items():  # into the graphs still open
                row = rows.get(request_id)
                if units and row is not None and row.status == RequestStatus.FANNED_OUT:
                    self._merge(conn, row, units)
            tasks = _by_request(ids, load(conn, SELECT_TASKS_OF, {"ids": ids}, Task))
            return [
                Recorded(first, rows.get(r.request_id), tasks[r.request_id])
                for r, first in zip(results, firsts, strict=True)
            ]

    def _supersede(self, s: Session, result: TaskResult) -> bool:
        """Record a late ``ok`` result over a failed or timed-out task; reopen its request
        if that had completed, so that its next completion sends the next revision.

        A late lookup of a request that completed is left alone: acting on what it found
        would be a new request's work, not a correction of this one's answer."""
        request = s.get(Request, result.request_id)
        final = request is not None and request.status not in OPEN_STATUSES
        lookup = TaskMessage.is_lookup_id(result.task_id)
        if final and request is not None and (request.status == RequestStatus.REFUSED or lookup):
            return False
        if not s.connection().execute(SUPERSEDE_RESULT, _result_row(result)).rowcount:
            return False
        detail: dict[str, Any] = {"task_id": result.task_id, "system": result.system}
        if final and request is not None:
            detail["superseded"] = _reopen(s, request)
            request.updated_at = utcnow()
        self._audit(
            s, result.request_id, f"connector:{result.system}", Action.LATE_RESULT, **detail
        )
        return True

    def time_out_tasks(self, request_id: str) -> int:
        now = utcnow()
        with self.session() as s:
            moved = _rowcount(
                s,
                update(Task)
                .where(Task.request_id == request_id, Task.status == TaskStatus.PENDING)
                .values(
                    status=TaskStatus.TIMED_OUT,
                    finished_at=now,
                    error="no result before the request timeout",
                ),
            )
            if moved:
                self._audit(s, request_id, "aggregate", Action.TASKS_TIMED_OUT, count=moved)
            return int(moved)

    def complete(
        self,
        request_id: str,
        status: str,
        body: dict[str, Any],
        latency_ms: int,
        refused_parts: int | None = None,
    ) -> bool:
        """Move an open request to its final status and queue its response, exactly once.
        With ``refused_parts``, only if the request still has that many refused parts:
        a part refused while the response was built makes it be built again."""
        done = self.complete_many([Completion(request_id, status, body, latency_ms, refused_parts)])
        return request_id in done

    def complete_many(self, completions: Sequence[Completion]) -> set[str]:
        """``complete`` each of ``completions``, in one transaction; the ids of the
        requests completed now."""
        now = utcnow()
        done: list[Completion] = []
        with self.engine.begin() as conn:
            held = hold_requests(conn, {c.request_id for c in completions})
            for c in completions:
                row = held.get(c.request_id)
                if row is None or not completable(row):
                    continue
                if c.refused_parts is None or len(row.refused_parts or []) == c.refused_parts:
                    done.append(c)
                    del held[c.request_id]  # a request completes once
            if not done:
                return set()
            # Held, they are completed as read: in one round trip.
            conn.execute(COMPLETE, [_completion_row(c, now) for c in done])
            lease = now + SEND_LEASE  # the completing worker sends them
            conn.execute(INSERT_RESPONSE, [_response_row(c, now, lease) for c in done])
            execute_many(conn, INSERT_AUDITS, [_completed_audit(c) for c in done])
        return {c.request_id for c in done}


def _record(conn: Connection, results: Sequence[TaskResult]) -> list[bool]:
    """Record each result whose task is still pending; whether each was its task's first
    result (a later one for the same task in ``results`` is not)."""
    first_of = {r.task_id: i for i, r in reversed(list(enumerate(results)))}
    rows = [_result_row(results[i]) for i in sorted(first_of.values())]
    recorded = {
        task_id
        for i in range(0, len(rows), RECORD_MANY_MAX)
        for task_id in conn.scalars(*record_many(conn.dialect.name, rows[i : i + RECORD_MANY_MAX]))
    }
    return [first_of[r.task_id] == i and r.task_id in recorded for i, r in enumerate(results)]


def _completion_row(c: Completion, now: datetime) -> dict[str, Any]:
    """``COMPLETE``'s parameters for a completion."""
    return {
        "id": c.request_id,
        "status": c.status,
        "completed_at": now,
        "updated_at": now,
        "latency_ms": c.latency_ms,
    }


def _response_row(c: Completion, now: datetime, lease: datetime) -> dict[str, Any]:
    """``INSERT_RESPONSE``'s parameters for a completion."""
    return {
        "request_id": c.request_id,
        "status": c.status,
        "body": c.body,
        "created_at": now,
        "lease_until": lease,
    }


def _completed_audit(c: Completion) -> dict[str, Any]:
    """The audit row of a request completed: its status, reasons and latency."""
    return _audit_row(
        c.request_id,
        "aggregate",
        Action.COMPLETED,
        status=c.status,
        reason_codes=[r["code"] for r in c.body.get("reasons", [])],
        latency_ms=c.latency_ms,
    )


def _planned(new: Sequence[TaskPlan]) -> dict[str, Any]:
    """What the audit trail says of newly planned tasks: their systems, by status."""

    def named(status: TaskStatus) -> list[str]:
        return sorted(p.system for p in new if p.status is status)

    detail: dict[str, Any] = {
        "systems": named(TaskStatus.PENDING),
        "not_applicable": named(TaskStatus.NOT_APPLICABLE),
    }
    if refused := named(TaskStatus.REFUSED):
        detail["refused"] = refused
    return detail


def _by_request(ids: Sequence[str], tasks: Sequence[Task]) -> dict[str, list[Task]]:
    """``tasks`` grouped by request, for each of ``ids`` (in their order)."""
    grouped: dict[str, list[Task]] = {rid: [] for rid in ids}
    for task in tasks:
        grouped[task.request_id].append(task)
    return grouped


def _task_row(request_id: str, plan: TaskPlan, now: datetime) -> dict[str, Any]:
    """``INSERT_NEW_TASKS``'s row for a planned task."""
    final = plan.status is not TaskStatus.PENDING
    return {
        "task_id": plan.task_id,
        "request_id": request_id,
        "system": plan.system,
        "kind": plan.kind,
        "wave": plan.wave,
        "status": plan.status,
        "attempts": 0,
        "created_at": now,
        "error": plan.reason,
        "result": plan.result,
        "finished_at": now if final else None,
    }
