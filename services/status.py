"""A request's status, tasks and timeline, read from the ledger (``dsr status``)."""

from __future__ import annotations

from typing import Any

from services.ledger import Ledger, as_utc
from services.settings import Settings


def request_status(settings: Settings, request_id: str) -> dict[str, Any] | None:
    ledger = Ledger(settings.database_url)
    try:
        row = ledger.request(request_id)
        if row is None:
            return None
        timeline = ledger.timeline(request_id)
        start = as_utc(timeline[0].at) if timeline else as_utc(row.created_at)
        response = ledger.response(request_id)
        return {
            "request_id": request_id,
            "kind": row.kind,
            "regulation": row.regulation,
            "status": row.status,
            "hold_reason": row.hold_reason,
            "received_at": as_utc(row.received_at).isoformat(),
            "deadline": as_utc(row.deadline_at).isoformat(),
            "latency_ms": row.latency_ms,
            "tasks": [
                {"system": t.system, "status": t.status, "attempts": t.attempts, "error": t.error}
                for t in ledger.tasks(request_id)
            ],
            "timeline": [
                {
                    "at": as_utc(e.at).isoformat(timespec="milliseconds"),
                    "since_start_ms": int((as_utc(e.at) - start).total_seconds() * 1000),
                    "actor": e.actor,
                    "action": e.action,
                    "detail": e.detail,
                }
                for e in timeline
            ],
            "response": response.body if response else None,
        }
    finally:
        ledger.close()
