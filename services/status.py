"""A request's status, stages and timeline, read from the ledger (``dsr status``, the dashboard).

Stages are measured from the ledger's own timestamps: intake up to fan-out
(or to a hold), each system's task from dispatch to result, and aggregation
from the last result to the response. A task sent but not answered is
``running`` when a runner's heartbeat lists it in hand, ``queued`` when the runners'
heartbeats are readable and none holds it, and ``in flight`` when they are not (a
runner on another host). Nothing here carries personal data: the audit trail records
names of identifiers and fields, never their values.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services import heartbeat
from services.ledger import Action, Ledger, RequestStatus, as_utc
from services.ledger.models import AuditEntry, Request, Task
from services.settings import Settings
from streams.records import TaskStatus, utcnow

#: Timeline actions that end the intake stage.
#: Task statuses decided when planning: the system was never asked.
_NEVER_RAN = ("not_applicable", "refused")
_INTAKE_ENDS = ("fanned_out", "hold", "refuse", "completed")


def request_status(
    settings: Settings, request_id: str, *, with_response: bool = True
) -> dict[str, Any] | None:
    with Ledger(settings.database_url) as ledger:
        return status_from(
            ledger, request_id, with_response=with_response, in_hand=in_hand(settings.home)
        )


def in_hand(home: Path | None) -> dict[str, dict[str, Any]] | None:
    """The tasks runners hold now, by task id, from their heartbeats: the runner's name,
    since when (epoch seconds), the attempt, and whether the runner is frozen. None when
    no runner's heartbeat is readable here."""
    if home is None:
        return None
    runners = [b for b in heartbeat.read(home).values() if b.tasks is not None]
    if not runners:
        return None
    now = time.time()
    return {
        task_id: {**held, "runner": b.name, "frozen": b.frozen(now)}
        for b in runners
        for task_id, held in (b.tasks or {}).items()
    }


def status_from(
    ledger: Ledger,
    request_id: str,
    *,
    with_response: bool = True,
    in_hand: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """``in_hand``: what ``in_hand()`` read; tells queued tasks from running ones."""
    row = ledger.request(request_id)
    if row is None:
        return None
    timeline = ledger.timeline(request_id)
    tasks = ledger.tasks(request_id)
    start = as_utc(row.created_at)
    states = {t.task_id: _state(t, in_hand) for t in tasks}
    report: dict[str, Any] = {
        "request_id": request_id,
        "kind": row.kind,
        "regulation": row.regulation,
        "status": row.status,
        "hold_reason": row.hold_reason,
        "received_at": as_utc(row.received_at).isoformat(),
        "deadline": as_utc(row.deadline_at).isoformat(),
        "latency_ms": row.latency_ms,
        "tasks": [
            {
                "system": t.system,
                "wave": t.wave,
                "status": t.status,
                "attempts": t.attempts,
                "error": t.error,
                **states[t.task_id],
            }
            for t in tasks
        ],
        "stages": stages(row, timeline, tasks, states),
        "timeline": [
            {
                "at": as_utc(e.at).isoformat(timespec="milliseconds"),
                "since_start_ms": _ms(start, e.at),
                "actor": e.actor,
                "action": e.action,
                "detail": e.detail,
            }
            for e in timeline
        ],
    }
    if row.status == RequestStatus.PARKED:
        report["parked"] = parked_reason(timeline)
    if with_response:
        response = ledger.response(request_id)
        report["response"] = response.body if response else None
    return report


def parked_reason(timeline: list[AuditEntry]) -> dict[str, Any] | None:
    """Why a parked request was set aside: its latest ``parked`` audit row (the stage,
    the exception type, where it was raised, the status it was in)."""
    entry = next((e for e in reversed(timeline) if e.action == Action.PARKED), None)
    if entry is None:
        return None
    keep = ("stage", "error_code", "where", "was")
    return {"at": as_utc(entry.at).isoformat(), **{k: entry.detail.get(k) for k in keep}}


def _state(task: Task, in_hand: Mapping[str, dict[str, Any]] | None) -> dict[str, Any]:
    """Where an unanswered task is: ``queued``, ``running`` (on which runner, since when,
    which attempt) or ``in flight`` (the runners' heartbeats are not readable here)."""
    if task.status != TaskStatus.PENDING:
        return {}
    if in_hand is None:
        return {"state": "in flight"}
    held = in_hand.get(task.task_id)
    if held is None:
        return {"state": "queued"}
    since = datetime.fromtimestamp(held["since"], tz=UTC)
    return {
        "state": "running",
        "runner": held["runner"] + (" (frozen)" if held["frozen"] else ""),
        "queued_ms": max(0, _ms(task.created_at, since)),
        "attempt": held["attempt"],
    }


def stages(
    row: Request,
    timeline: list[AuditEntry],
    tasks: list[Task],
    states: Mapping[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The request's stages in order, each with its offset from intake and its duration.

    An unfinished stage runs to now; it is marked ``running``, or, for a task, with its
    ``state`` (``queued``, ``running`` or ``in flight``).
    """
    line = _Stages(as_utc(row.created_at), utcnow())
    line.before_tasks(row, timeline)
    ran = [t for t in tasks if t.status not in _NEVER_RAN]
    for t in sorted(ran, key=lambda t: (t.wave, as_utc(t.created_at), t.system)):
        line.task(t, (states or {}).get(t.task_id))
    finished = [as_utc(t.finished_at) for t in ran if t.finished_at]
    if finished and len(finished) == len(ran) and (row.completed_at or row.status == "fanned_out"):
        line.add("aggregation", max(finished), row.completed_at, "ok")
    if row.completed_at:
        line.add("total", line.start, row.completed_at, row.status)
    return line.out


@dataclass
class _Stages:
    """Stages timed from ``start``; an unfinished one runs to ``now``."""

    start: datetime
    now: datetime
    out: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        stage: str,
        began: datetime,
        ended: datetime | None,
        status: str,
        running: str = "running",
        **extra: Any,
    ) -> None:
        self.out.append(
            {
                "stage": stage,
                "start_ms": _ms(self.start, began),
                "duration_ms": _ms(began, ended or self.now),
                "status": status if ended else running,
                **extra,
            }
        )

    def before_tasks(self, row: Request, timeline: list[AuditEntry]) -> None:
        """Intake; and a hold, and the fan-out after its release, if it was held."""
        intake_end = next((e for e in timeline if e.action in _INTAKE_ENDS), None)
        self.add("intake", self.start, intake_end.at if intake_end else None, "ok")
        holds = [e for e in timeline if e.action == Action.HOLD]
        if not holds:
            return
        releases = [e for e in timeline if e.action in (Action.RELEASED, Action.REFUSE)]
        held_until = releases[-1].at if releases else None
        self.add("held", holds[0].at, held_until, "released", reason=row.hold_reason or "")
        if releases and releases[-1].action == Action.RELEASED:
            fanned = next((e for e in timeline if e.action == Action.FANNED_OUT), None)
            self.add("fan-out", releases[-1].at, fanned.at if fanned else None, "ok")

    def task(self, t: Task, state: dict[str, Any] | None) -> None:
        """A task's stage, with its state while unanswered and its connector's time."""
        where = dict(state or {"state": "running"})
        self.add(
            f"system:{t.system}",
            t.created_at,
            t.finished_at,
            t.status,
            where.pop("state"),
            wave=t.wave,
            attempts=t.attempts,
            connector_ms=_connector_ms(t),
            **where,
        )


def _connector_ms(t: Task) -> int | None:
    """How long the connector took, from the result's own times."""
    if not (t.result and t.result.get("started_at") and t.result.get("finished_at")):
        return None
    return _ms(
        datetime.fromisoformat(t.result["started_at"]),
        datetime.fromisoformat(t.result["finished_at"]),
    )


def _ms(start: datetime, end: datetime) -> int:
    return int((as_utc(end) - as_utc(start)).total_seconds() * 1000)
