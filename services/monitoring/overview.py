"""What the dashboard and ``dsr top`` show, computed from the ledger.

The ledger is shared by every worker, so one read answers for the whole
pipeline, wherever its processes run. Everything here is request ids, kinds,
systems, statuses and timings: no subject identifier, no record content.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.ledger import Ledger, as_utc
from services.ledger.queries import OpenRequest
from streams.records import utcnow

QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
#: What a system's time means, wherever it is shown (here, ``dsr top``, Grafana's
#: "Slowest systems" from ``dsr_task_seconds``, the DSRSystemSlow alert).
TASK_TIME = "task time: runner starts the task → result, retries and backoff included"


@dataclass(frozen=True)
class Window:
    """The span the latency figures cover, cut into ``step``-long points."""

    span: timedelta = timedelta(minutes=15)
    step: timedelta = timedelta(seconds=15)

    def points(self, now: datetime) -> list[datetime]:
        n = max(1, math.ceil(self.span / self.step))
        last = _floor(now, self.step)
        return [last - self.step * i for i in range(n - 1, -1, -1)]


def quantiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95 and p99 by nearest rank; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return dict.fromkeys(QUANTILES)
    return {
        name: ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
        for name, q in QUANTILES.items()
    }


def overview(
    ledger: Ledger, window: Window | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Everything the dashboard plots, as one JSON-ready dict (milliseconds throughout)."""
    window = window or Window()
    now = now or utcnow()
    since = now - window.span
    requests = ledger.finished_requests(since)
    tasks = ledger.finished_tasks(since)
    open_requests = ledger.open_requests()

    by_kind = _samples(
        (r.kind, as_utc(r.completed_at), _ms(r.created_at, r.completed_at)) for r in requests
    )
    # A system's time on a task (TASK_TIME): from when a runner began it to its result,
    # retries and their waits included, as dsr_task_seconds in Prometheus. Time queued
    # behind other tasks is not that system's fault; a task no runner answered is
    # counted as timed out, not timed.
    by_system = _samples(
        (t.system, as_utc(t.finished_at), _ms(t.started_at, t.finished_at))
        for t in tasks
        if t.started_at is not None
    )
    answered: dict[str, int] = defaultdict(int)
    failures: dict[str, int] = defaultdict(int)
    for t in tasks:
        answered[t.system] += 1
        if t.status != "ok":
            failures[t.system] += 1
    # A redriven task's failure is history, not erased by the redrive's success.
    redriven = ledger.redrives(since)
    for system, n in redriven.items():
        failures[system] += n
        answered[system] += n
    waiting: dict[str, int] = defaultdict(int)
    for o in open_requests:
        for system in o.waiting_on:
            waiting[system] += 1

    systems = []
    for system in sorted(set(answered) | set(waiting)):
        samples = [ms for _, ms in by_system.get(system, [])]
        systems.append(
            {
                "system": system,
                "n": answered[system],
                **quantiles(samples),
                "failed": failures[system],
                "failure_rate": failures[system] / answered[system] if answered[system] else 0.0,
                "redriven": redriven.get(system, 0),
                "waiting": waiting[system],
            }
        )
    systems.sort(key=lambda s: (s["p95"] or 0.0, s["waiting"]), reverse=True)
    finished = len(requests)
    unsuccessful = sum(1 for r in requests if r.status in ("failed", "partially_completed"))
    return {
        "generated_at": now.isoformat(),
        "window_s": int(window.span.total_seconds()),
        "step_s": int(window.step.total_seconds()),
        "series": {
            "kind": _series(by_kind, window, now),
            "system": _series(by_system, window, now),
        },
        "kinds": [
            {"kind": kind, "n": len(s), **quantiles([ms for _, ms in s])}
            for kind, s in sorted(by_kind.items())
        ],
        "task_time": TASK_TIME,
        "systems": systems,  # slowest (p95) first
        "failure_rate": {
            "requests": unsuccessful / finished if finished else 0.0,
            "completed": finished,
            "unsuccessful": unsuccessful,
            "tasks": sum(failures.values()) / max(1, sum(answered.values())),
        },
        "in_flight": _in_flight(open_requests, now),
        "parked": _parked(ledger),
        "deadlines": _deadlines(open_requests, now),
    }


def _samples(
    rows: Iterable[tuple[str, datetime, float]],
) -> dict[str, list[tuple[datetime, float]]]:
    out: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for key, at, ms in rows:
        out[key].append((at, ms))
    return dict(out)


def _series(
    samples: dict[str, list[tuple[datetime, float]]], window: Window, now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """Per key, one point per step: the quantiles of what finished within that step."""
    points = window.points(now)
    out = {}
    for key, values in samples.items():
        buckets: dict[datetime, list[float]] = defaultdict(list)
        for at, ms in values:
            buckets[_floor(at, window.step)].append(ms)
        out[key] = [
            {"t": t.isoformat(), "n": len(buckets[t]), **quantiles(buckets[t])} for t in points
        ]
    return out


def _in_flight(open_requests: Sequence[OpenRequest], now: datetime) -> dict[str, Any]:
    by_status: dict[str, int] = defaultdict(int)
    rows: list[dict[str, Any]] = []
    for o in open_requests:
        where = waiting_label(o)
        by_status[where if o.status == "held" else o.status] += 1
        rows.append(
            {
                "request_id": o.request_id,
                "kind": o.kind,
                "regulation": o.regulation,
                "status": o.status,
                "waiting_on": where,
                "age_ms": _ms(o.created_at, now),
                "deadline": as_utc(o.deadline_at).isoformat(),
            }
        )
    rows.sort(key=lambda r: r["age_ms"], reverse=True)
    return {"total": len(open_requests), "by_status": dict(by_status), "requests": rows[:50]}


def _parked(ledger: Ledger, shown: int = 20) -> dict[str, Any]:
    """Parked requests: how many, and the first ``shown`` by deadline with the
    exception type that parked each (``dsr park list`` has them all)."""
    total = sum(n for (status, _), n in ledger.open_request_counts().items() if status == "parked")
    rows = ledger.open_requests(shown, statuses=["parked"])
    return {
        "total": total,
        "requests": [
            {
                "request_id": o.request_id,
                "kind": o.kind,
                "error_code": o.hold_reason,
                "deadline": as_utc(o.deadline_at).isoformat(),
            }
            for o in rows
        ],
    }


def waiting_label(o: OpenRequest) -> str:
    """Where an open request waits: its hold reason, the systems it waits on, or a stage."""
    if o.status == "held":
        return f"held: {o.hold_reason or 'unknown'}"
    if o.status == "parked":
        return f"parked: {o.hold_reason or 'unknown'} (dsr park release)"
    if o.waiting_on:
        return ", ".join(o.waiting_on)
    return "fan-out" if o.status == "accepted" else "aggregation"


def _deadlines(open_requests: Sequence[OpenRequest], now: datetime) -> dict[str, Any]:
    """Open requests by the day they fall due; the overdue ones listed first."""
    days: dict[str, list[dict[str, Any]]] = defaultdict(list)
    overdue = []
    for o in open_requests:
        deadline = as_utc(o.deadline_at)
        entry = {
            "request_id": o.request_id,
            "kind": o.kind,
            "regulation": o.regulation,
            "deadline": deadline.isoformat(),
        }
        if deadline < now:
            overdue.append({**entry, "overdue_ms": _ms(deadline, now)})
        else:
            days[deadline.date().isoformat()].append(entry)
    return {
        "overdue": sorted(overdue, key=lambda e: -e["overdue_ms"]),
        "days": [{"date": d, "requests": days[d]} for d in sorted(days)],
    }


def _ms(start: datetime, end: datetime) -> float:
    return round((as_utc(end) - as_utc(start)).total_seconds() * 1000, 1)


def _floor(at: datetime, step: timedelta) -> datetime:
    at = as_utc(at)
    seconds = step.total_seconds()
    return datetime.fromtimestamp(math.floor(at.timestamp() / seconds) * seconds, tz=at.tzinfo)
