"""Fan-out: plan the first tasks (the resolve phase's lookups, or the actions when no
system resolves identities), record them, emit them.

What intake accepts is fanned out in place (``in_place``), in the batch that admitted
it; ``dsr.accepted`` carries the rest (releases, the sweeper, redrives) and what could
not be fanned out there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from services.faults import crash_point
from services.ledger import RequestStatus, TaskPlan
from streams import topics
from streams.agents.aggregate import advance
from streams.agents.respond import finish
from streams.context import Outgoing, Pipeline
from streams.planning import identity_graph, next_step, task_messages
from streams.records import RequestEvent, TaskStatus, utcnow

log = logging.getLogger("dsr.fanout")


def in_place(ctx: Pipeline, outgoing: list[Outgoing]) -> list[Outgoing]:
    """``outgoing`` (what an intake batch sends) with the requests it sends to fan-out
    fanned out here instead, in a transaction of their own: their first tasks leave with
    the batch, a hop and a batch sooner. If that fails, for any reason, they go to
    ``dsr.accepted`` as they were, where the fan-out agent waits for the ledger or sets
    aside the one that cannot be fanned out.

    A crash after the admissions are committed leaves nothing behind: the batch is read
    again, and intake sends a redelivered request that is accepted or fanned out to
    fan-out once more, which plans what is missing and re-sends what is pending."""
    accepted: list[Outgoing] = []
    kept: list[Outgoing] = []
    for o in outgoing:
        (accepted if o.topic == topics.ACCEPTED and o.key else kept).append(o)
    if not accepted:
        return outgoing
    try:
        fanned = handle_batch(ctx, [(o.key or b"").decode() for o in accepted])
    except Exception as exc:  # noqa: BLE001 - the fan-out agent takes them
        log.warning(
            "fan-out in place failed (%s): %d requests sent to fan-out",
            type(exc).__name__,
            len(accepted),
            extra={"stage": "fanout"},
        )
        return outgoing
    return kept + fanned


def handle_accepted(ctx: Pipeline, request_id: str) -> list[Outgoing]:
    """Fan out one accepted request (``handle_batch`` of one)."""
    return handle_batch(ctx, [request_id])


def handle_batch(ctx: Pipeline, request_ids: Sequence[str]) -> list[Outgoing]:
    """Fan out the accepted requests among ``request_ids``: their first tasks are
    recorded in one ledger transaction. Those fanned out already (a message sent again
    by the sweeper or reconcile, or redelivered after a crash) re-send what is pending
    and plan what is missing."""
    ids = list(dict.fromkeys(request_ids))  # a request sent twice in a batch: once
    rows = ctx.ledger.requests(ids)
    outgoing: list[Outgoing] = []
    planned: dict[str, tuple[RequestEvent, list[dict[str, str]], list[TaskPlan]]] = {}
    for request_id in ids:
        row = rows.get(request_id)
        if row is None or row.status not in (RequestStatus.ACCEPTED, RequestStatus.FANNED_OUT):
            continue
        if row.status == RequestStatus.FANNED_OUT:
            outgoing += advance(ctx, request_id, resend=True)
            continue
        event = ctx.ledger.request_event(row)
        graph = identity_graph(event, [])  # nothing found yet: the request's own identifiers
        refused = ctx.ledger.refused_parts(row)
        planned[request_id] = (event, graph, next_step(ctx, event, graph, [], refused=refused))
    if not planned:
        return outgoing
    recorded = ctx.ledger.fan_out_many(
        {request_id: plans for request_id, (_, _, plans) in planned.items()},
        ctx.request_timeout,
    )
    crash_point("fanout.planned")
    # at or after the timeout the ledger has just set: a runner never skips a task early
    timeout_at = utcnow() + ctx.request_timeout
    for request_id, (event, graph, _) in planned.items():
        pending = [t for t in recorded[request_id] if t.status == TaskStatus.PENDING]
        log.info(
            "fanned out",
            extra={
                "request_id": request_id,
                "stage": "fanout",
                "kind": event.kind,
                "tasks": len(pending),
            },
        )
        if pending:
            outgoing += task_messages(ctx, event, graph, pending, timeout_at)
        else:
            outgoing += finish(ctx, request_id)
    return outgoing
