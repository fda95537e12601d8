"""Fan-out: plan the first tasks (the resolve phase's lookups, or the actions when no
system resolves identities), record them, emit them."""

from __future__ import annotations

import logging

from services.faults import crash_point
from services.ledger import RequestStatus
from streams.agents.aggregate import advance
from streams.agents.respond import finish
from streams.context import Outgoing, Pipeline
from streams.planning import identity_graph, next_step, task_messages
from streams.records import TaskStatus, utcnow

log = logging.getLogger("dsr.fanout")


def handle_accepted(ctx: Pipeline, request_id: str) -> list[Outgoing]:
    row = ctx.ledger.request(request_id)
    if row is None or row.status not in (RequestStatus.ACCEPTED, RequestStatus.FANNED_OUT):
        return []
    if row.status == RequestStatus.FANNED_OUT:
        # sent again (reconcile, or a crash): plan what is missing, re-send what is pending
        return advance(ctx, request_id, resend=True)
    event = ctx.ledger.request_event(row)
    graph = identity_graph(event, [])  # nothing found yet: the request's own identifiers
    plans = next_step(ctx, event, graph, [], refused=ctx.ledger.refused_parts(row))
    tasks = ctx.ledger.fan_out(request_id, plans, ctx.request_timeout)
    crash_point("fanout.planned")
    pending = [t for t in tasks if t.status == TaskStatus.PENDING]
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
    # at or after the timeout the ledger has just set: a runner never skips a task early
    return task_messages(ctx, event, graph, pending, utcnow() + ctx.request_timeout)
