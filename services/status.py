"""A request's status, stages and timeline, read from the ledger (``dsr status``, the dashboard).

Stages are measured from the ledger's own timestamps: intake up to fan-out
(or to a hold), each system's task from dispatch to result, and aggregation
from the last result to the response. Nothing here carries personal data:
the audit trail records names of identifiers and fields, never their values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.ledger import Ledger, RequestStatus, as_utc
from services.ledger.models import AuditEntry, Request, Task
from services.settings import Settings
from streams.records import utcnow

#: Timeline actions that end the intake stage.
#: Task statuses decided when planning: the system was never asked.
_NEVER_RAN = ("not_applicable", "refused")
_INTAKE_ENDS = ("fanned_out", "hold", "refuse", "completed")


def request_status(
    settings: Settings, request_id: str, *, with_response: bool = True
) -> dict[str, Any] | None:
    ledger = Ledger(settings.database_url)
    try:
        return status_from(ledger, request_id, with_response=with_response)
    finally:
        ledger.close()


def status_from(
    ledger: Ledger, request_id: str, *, with_response: bool = True
) -> dict[str, Any] | None:
    row = ledger.request(request_id)
    if row is None:
        return None
    timeline = ledger.timeline(request_id)
    tasks = ledger.tasks(request_id)
    start = as_utc(row.created_at)
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
            }
            for t in tasks
        ],
        "stages": stages(row, timeline, tasks),
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
    entry = next((e for e in reversed(timeline) if e.action == "parked"), None)
    if entry is None:
        return None
    keep = ("stage", "error_code", "where", "was")
    return {"at": as_utc(entry.at).isoformat(), **{k: entry.detail.get(k) for k in keep}}


def stages(row: Request, timeline: list[AuditEntry], tasks: list[Task]) -> list[dict[str, Any]]:
    """The request's stages in order, each with its offset from intake and its duration.

    An unfinished stage runs to now and is marked ``running``.
    """
    start = as_utc(row.created_at)
    now = utcnow()
    out: list[dict[str, Any]] = []

    def add(stage: str, began: datetime, ended: datetime | None, status: str, **extra: Any) -> None:
        out.append(
            {
                "stage": stage,
                "start_ms": _ms(start, began),
                "duration_ms": _ms(began, ended or now),
                "status": status if ended else "running",
                **extra,
            }
        )

    holds = [e for e in timeline if e.action == "hold"]
    releases = [e for e in timeline if e.action in ("released", "refuse")]
    intake_end = next((e for e in timeline if e.action in _INTAKE_ENDS), None)
    add("intake", start, intake_end.at if intake_end else None, "ok")
    if holds:
        held_until = releases[-1].at if releases else None
        add("held", holds[0].at, held_until, "released", reason=row.hold_reason or "")
        fanned = next((e for e in timeline if e.action == "fanned_out"), None)
        if releases and releases[-1].action == "released":
            add("fan-out", releases[-1].at, fanned.at if fanned else None, "ok")
    for t in sorted(tasks, key=lambda t: (t.wave, as_utc(t.created_at), t.system)):
        if t.status in _NEVER_RAN:
            continue
        connector_ms = None
        if t.result and t.result.get("started_at") and t.result.get("finished_at"):
            connector_ms = _ms(
                datetime.fromisoformat(t.result["started_at"]),
                datetime.fromisoformat(t.result["finished_at"]),
            )
        add(
            f"system:{t.system}",
            t.created_at,
            t.finished_at,
            t.status,
            wave=t.wave,
            attempts=t.attempts,
            connector_ms=connector_ms,
        )
    finished = [
        as_utc(t.finished_at) for t in tasks if t.finished_at and t.status not in _NEVER_RAN
    ]
    if finished and (row.completed_at or row.status == "fanned_out"):
        last = max(finished)
        if len(finished) == len([t for t in tasks if t.status not in _NEVER_RAN]):
            add("aggregation", last, row.completed_at, "ok")
    if row.completed_at:
        add("total", start, row.completed_at, row.status)
    return out


def _ms(start: datetime, end: datetime) -> int:
    return int((as_utc(end) - as_utc(start)).total_seconds() * 1000)
