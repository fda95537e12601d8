"""Fan-out: plan the first wave of tasks from the data map, record them, emit them."""

from __future__ import annotations

import logging

from services.faults import crash_point
from services.ledger import RequestStatus
from streams.agents.aggregate import finish
from streams.context import Outgoing, Pipeline
from streams.planning import next_wave, task_messages
from streams.records import TaskStatus

log = logging.getLogger("dsr.fanout")


def handle_accepted(ctx: Pipeline, request_id: str) -> list[Outgoing]:
    row = ctx.ledger.request(request_id)
    if row is None or row.status not in (RequestStatus.ACCEPTED, RequestStatus.FANNED_OUT):
        return []
    event = ctx.ledger.request_event(row)
    if row.status == RequestStatus.ACCEPTED:
        plans = next_wave(ctx, event, {}, [])
        tasks = ctx.ledger.plan_tasks(request_id, plans, ctx.request_timeout)
        crash_point("fanout.planned")
        pending = [t for t in tasks if t.status == TaskStatus.PENDING]
    else:
        pending = ctx.ledger.pending_tasks(request_id)
    log.info(
        "fanned out",
        extra={
            "request_id": request_id,
            "stage": "fanout",
            "kind": event.kind,
            "tasks": len(pending),
        },
    )
    if not pending:
        return finish(ctx, request_id)
    return task_messages(ctx, event, ctx.ledger.discovered(row), pending)
