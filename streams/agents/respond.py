"""Responding: build the response from the tasks' outcomes, complete the request once in
the ledger (which queues the response in its outbox), and send it with its notice."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from services import rules
from services.delivery.package import build_package
from services.faults import crash_point
from services.ledger import Completion, as_utc
from services.ledger.models import Request
from services.ledger.models import Task as TaskRow
from services.responses import TaskOutcome, summarise, withhold
from streams import topics
from streams.agents import notices
from streams.agents.decode import opened
from streams.context import Outgoing, Pipeline
from streams.records import (
    HOLDS_DATA,
    PACKAGE_KINDS,
    Kind,
    Reason,
    RequestEvent,
    ResponseEvent,
    ResponseStatus,
    Task,
    TaskResult,
    TaskStatus,
    utcnow,
)

log = logging.getLogger("dsr.respond")


def finish(
    ctx: Pipeline, request_id: str, read: tuple[Request | None, list[TaskRow]] | None = None
) -> list[Outgoing]:
    """Build the response and complete the request once; re-send an unpublished one.

    ``read`` is the request and its tasks if the caller has just read them."""
    built = prepare(ctx, request_id, read)
    return conclude(ctx, [built]) if isinstance(built, Built) else built


@dataclass(frozen=True)
class Built:
    """A response built for a request the ledger is yet to complete (``conclude``)."""

    request_id: str
    response: ResponseEvent
    body: dict[str, Any]
    #: The request's refused parts when it was built: one refused since rebuilds it.
    seen: int


def prepare(
    ctx: Pipeline,
    request_id: str,
    read: tuple[Request | None, list[TaskRow]] | None = None,
    event: RequestEvent | None = None,
) -> list[Outgoing] | Built:
    """The response to complete the request with (``conclude``); or, if the request was
    completed already, what is left to send of its response. ``event`` is the request's
    event if the caller has just opened it from ``read``'s row."""
    row, tasks = read or (None, [])
    if row is None or row.completed_at is not None:  # a response may exist: look
        existing = ctx.ledger.response(request_id)
        if existing is not None:
            return _again(request_id, existing.body) if not existing.published_at else []
        row, tasks = ctx.ledger.progress(request_id)
        event = None
    if row is None:
        return []
    response = build(ctx, row, tasks, event)
    body = response.model_dump(mode="json")
    return Built(request_id, response, body, len(row.refused_parts or []))


def conclude(ctx: Pipeline, built: Sequence[Built]) -> list[Outgoing]:
    """Complete the requests of ``built`` in one ledger transaction, each once, and send
    each response with its notice. One that another worker completed first, or that had a
    part refused meanwhile, goes as ``_lost`` says."""
    completed = ctx.ledger.complete_many(
        [
            Completion(b.request_id, b.response.status, b.body, b.response.latency_ms, b.seen)
            for b in built
        ]
    )
    if completed:
        crash_point("aggregate.completed")
    outgoing: list[Outgoing] = []
    for b in built:
        if b.request_id not in completed:
            outgoing += _lost(ctx, b.request_id, b.seen)
            continue
        log.info(
            "request completed",
            extra={
                "request_id": b.request_id,
                "stage": "aggregate",
                "status": b.response.status,
                "latency_ms": b.response.latency_ms,
            },
        )
        sent = _response_message(b.request_id, b.body, record=b.response)
        outgoing += [sent, notices.due(b.request_id, "response")]
    return outgoing


def build(
    ctx: Pipeline, row: Request, tasks: list[TaskRow], event: RequestEvent | None = None
) -> ResponseEvent:
    """The response to ``row`` (its ``event``, opened if not given) from its tasks'
    outcomes, with its package or letter."""
    event = event or ctx.ledger.request_event(row)
    outcomes = task_outcomes(ctx, tasks)
    if event.kind in PACKAGE_KINDS:
        outcomes = withhold(outcomes, ctx.ledger.refused_parts(row))
    requested = [c.field for c in event.correction.changes] if event.correction else []
    summary = summarise(event.kind, outcomes, requested)
    status, reasons = summary.status, summary.reasons
    if row.status == "refused":
        status = ResponseStatus.REFUSED
        reasons = [Reason(code=row.hold_reason or "refused", message=_refusal_message(row))]
    now = utcnow()
    response = ResponseEvent(
        request_id=row.request_id,
        kind=event.kind,
        regulation=event.regulation,
        status=status,
        systems=summary.systems,
        corrections=summary.corrections,
        reasons=reasons,
        received_at=event.received_at,
        completed_at=now,
        latency_ms=_ms(now - event.received_at),
        processing_ms=_ms(now - as_utc(row.created_at)),
        deadline=as_utc(row.deadline_at),
        purposes=_purposes(ctx, event, outcomes),
        extensions=row.extensions or [],
        revision=row.revision,
    )
    if status is not ResponseStatus.REFUSED or event.delivery.method == "written":
        response = _with_package(ctx, event, response, outcomes)
    return response


def _purposes(
    ctx: Pipeline, event: RequestEvent, outcomes: list[TaskOutcome]
) -> list[dict[str, Any]] | None:
    """For a purpose notification, the purposes of the systems holding the principal's
    data (provision records included); None for any other kind."""
    if event.kind is not Kind.PURPOSE_NOTIFICATION:
        return None
    holding = [o.system for o in outcomes if o.result and o.result.details.get(HOLDS_DATA)]
    return [p.model_dump() for p in ctx.datamap.purposes_of(holding)]


def _again(request_id: str, body: dict[str, Any]) -> list[Outgoing]:
    """A response the ledger holds unsent, to send again (``streams.outbox``)."""
    return [_response_message(request_id, body, resend=True), notices.due(request_id, "response")]


def _lost(ctx: Pipeline, request_id: str, seen: int) -> list[Outgoing]:
    """The ledger did not complete the request: another completed it first (send its
    response if unsent), or a part was refused while this one was built (build again)."""
    if ctx.ledger.response(request_id):
        return finish(ctx, request_id)
    row = ctx.ledger.request(request_id)
    if row and not row.completed_at and len(row.refused_parts or []) != seen:
        return finish(ctx, request_id)
    return []


def _with_package(
    ctx: Pipeline, event: RequestEvent, response: ResponseEvent, outcomes: list[TaskOutcome]
) -> ResponseEvent:
    method = event.delivery.method
    paper_only = _paper_only(ctx, outcomes) if event.kind in PACKAGE_KINDS else []
    if method == "electronic" and paper_only:
        method = "written"
        fallback = Reason(code="written_fallback", message=_fallback_message(event, paper_only))
        response = response.model_copy(update={"reasons": [*response.reasons, fallback]})
    written = method == "written"
    if not written and event.kind not in PACKAGE_KINDS | {
        Kind.CORRECTION,
        Kind.PURPOSE_NOTIFICATION,
    }:
        return response
    info = build_package(
        ctx.storage,
        response=response,
        results=[o.result for o in outcomes if o.result is not None],
        purposes=response.purposes,
        method=method,
        letterhead=ctx.letterhead,
        labels=ctx.labels,
        addressee=event.subject.name,
    )
    if written:
        return response.model_copy(update={"letter": info.uri, "package": info.prefix_uri})
    return response.model_copy(update={"package": info.uri})


def task_outcomes(ctx: Pipeline, tasks: list[TaskRow]) -> list[TaskOutcome]:
    """Each action task's outcome, its result opened, and whether the resolve phase
    found the principal in its system. Lookups are evidence, not actions: they are not
    outcomes of their own, so never in the response."""
    looked_up = _looked_up(ctx, tasks)
    return [
        TaskOutcome(
            t.system,
            TaskStatus(t.status),
            t.error,
            opened(ctx, TaskResult.model_validate(t.result)) if t.result else None,
            looked_up=t.system in looked_up,
        )
        for t in tasks
        if not Task.is_lookup_id(t.task_id)
    ]


def _looked_up(ctx: Pipeline, tasks: list[TaskRow]) -> set[str]:
    """The systems whose lookup, in the resolve phase, found the principal."""
    return {
        t.system
        for t in tasks
        if Task.is_lookup_id(t.task_id)
        and t.status == TaskStatus.OK
        and t.result
        and opened(ctx, TaskResult.model_validate(t.result)).details.get(HOLDS_DATA)
    }


def _paper_only(ctx: Pipeline, outcomes: list[TaskOutcome]) -> list[str]:
    """Systems that found the principal's data but can only disclose it on paper."""
    return sorted(
        o.system
        for o in outcomes
        if o.result is not None
        and o.result.records
        and (spec := ctx.datamap.systems.get(o.system)) is not None
        and not spec.electronic_disclosure
    )


def _fallback_message(event: RequestEvent, systems: list[str]) -> str:
    basis = " (APPI Art. 33(1), proviso)" if event.regulation == "appi" else ""
    return (
        f"The data held in {', '.join(systems)} can only be provided on paper, so the "
        f"disclosure is made in writing instead of electronically{basis}."
    )


def _refusal_message(row: Request) -> str:
    code = row.hold_reason or ""
    ground = rules.policy_for(row.regulation).refusal_codes.get(code)
    return ground.en if ground else code


def _response_message(
    request_id: str,
    body: dict[str, Any],
    resend: bool = False,
    record: ResponseEvent | None = None,
) -> Outgoing:
    return Outgoing(
        topics.RESPONSES, request_id.encode(), json.dumps(body).encode(), resend, record
    )


def _ms(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() * 1000))
