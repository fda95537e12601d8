"""Fan-out: choose the systems from the data map, record the expected tasks, emit them."""

from __future__ import annotations

import logging

from services.ledger import RequestStatus, TaskPlan
from streams import topics
from streams.agents.aggregate import finish
from streams.context import Outgoing, Pipeline
from streams.records import FAN_OUT_KINDS, Kind, RequestEvent, Task, TaskStatus, dump

log = logging.getLogger("dsr.fanout")


def plan(ctx: Pipeline, event: RequestEvent) -> list[TaskPlan]:
    """One plan per system: a task to send, or a recorded reason it is not applicable."""
    if event.kind not in FAN_OUT_KINDS:
        return []
    plans = []
    known = set(event.subject.identifiers)
    for system, spec in sorted(ctx.datamap.systems.items()):
        task_id = Task.make_id(event.request_id, system, event.kind)
        reason = None
        if spec.excluded:
            reason = f"excluded: {spec.excluded} store"
        elif not ctx.supports(system, event.kind):
            reason = f"{system} does not support {event.kind}"
        elif not known & set(spec.identifiers):
            reason = f"no identifier {spec.identifiers} for {system}"
        status = TaskStatus.NOT_APPLICABLE if reason else TaskStatus.PENDING
        plans.append(TaskPlan(task_id, system, event.kind, 0, status, reason))
    return plans


def handle_accepted(ctx: Pipeline, request_id: str) -> list[Outgoing]:
    row = ctx.ledger.request(request_id)
    if row is None or row.status not in (RequestStatus.ACCEPTED, RequestStatus.FANNED_OUT):
        return []
    event = RequestEvent.model_validate(row.event)
    if row.status == RequestStatus.ACCEPTED:
        ctx.ledger.plan_tasks(request_id, plan(ctx, event), ctx.request_timeout)
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
    key = request_id.encode()
    return [
        Outgoing(topics.tasks_topic(t.system), key, dump(_task(event, t.task_id, t.system)))
        for t in pending
    ]


def _task(event: RequestEvent, task_id: str, system: str) -> Task:
    return Task(
        request_id=event.request_id,
        task_id=task_id,
        system=system,
        kind=event.kind,
        identifiers=dict(event.subject.identifiers),
        changes=list(event.correction.changes) if event.correction else [],
        grounds=list(event.grounds or []),
    )


__all__ = ["Kind", "handle_accepted", "plan"]
