"""Aggregation: collect per-system results; when all are in, or time is up, respond."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from services import rules
from services.crypto import CryptoError
from services.delivery.package import build_package
from services.delivery.storage import ObjectNotFound
from services.faults import crash_point
from services.ledger import as_utc
from services.ledger.models import Request
from services.ledger.models import Task as TaskRow
from services.responses import TaskOutcome, summarise, withhold
from streams import topics
from streams.agents import notices
from streams.context import Outgoing, Pipeline
from streams.planning import identity_graph, next_step, planned, task_messages
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
    merge_units,
    utcnow,
)

log = logging.getLogger("dsr.aggregate")


def handle_result(ctx: Pipeline, raw: bytes) -> list[Outgoing]:
    """One result event: recorded, then its request advanced."""
    [progress] = record(ctx, [parse_result(ctx, raw)])
    return progress.advance(ctx)


@dataclass(frozen=True)
class Parsed:
    """A result event that validated and opened: the result as it came (sealed), and
    the identity units it found."""

    result: TaskResult
    found: list[dict[str, str]]


def parse_result(ctx: Pipeline, raw: bytes) -> Parsed:
    """Validate a result event and check that it opens; ``PoisonEvent`` otherwise."""
    try:
        result = TaskResult.model_validate_json(raw)
    except ValidationError as exc:
        raise PoisonEvent("invalid task result", str(exc)[:500]) from None
    # Checked before it is recorded; the ledger keeps it as it came, sealed.
    # Only the resolve phase's lookups extend the identity graph.
    found = _opened(ctx, result).identities if Task.is_lookup_id(result.task_id) else []
    return Parsed(result, found)


@dataclass
class Progress:
    """What a batch of results did to one request, to advance it once."""

    request_id: str
    read: tuple[Request | None, list[TaskRow]]
    found: list[dict[str, str]] = field(default_factory=list)
    #: A result was redelivered: send every pending task again (runners are idempotent).
    resend: bool = False
    #: Where the results came from in the batch (``record``'s input).
    sources: list[int] = field(default_factory=list)

    def advance(self, ctx: Pipeline) -> list[Outgoing]:
        return advance(ctx, self.request_id, self.found, resend=self.resend, read=self.read)


def record(ctx: Pipeline, batch: list[Parsed]) -> list[Progress]:
    """Record a batch of results in one ledger transaction; one ``Progress`` a request.

    A redelivered result means the worker may have died after recording it but before
    sending what it unlocked, so its request re-sends every pending task."""
    recorded = ctx.ledger.record_results([p.result for p in batch])
    crash_point("aggregate.recorded")
    progress: dict[str, Progress] = {}
    for i, (parsed, rec) in enumerate(zip(batch, recorded, strict=True)):
        result = parsed.result
        log.info(
            "result %s",
            result.status if rec.first else "redelivered",
            extra={
                "request_id": result.request_id,
                "stage": "aggregate",
                "system": result.system,
                "status": result.status,
            },
        )
        step = progress.setdefault(
            result.request_id, Progress(result.request_id, (rec.request, rec.tasks))
        )
        step.found = merge_units(step.found, parsed.found)
        step.resend |= not rec.first
        step.sources.append(i)
    return list(progress.values())


def advance(
    ctx: Pipeline,
    request_id: str,
    found: list[dict[str, str]],
    *,
    resend: bool = False,
    closing: bool = False,
    read: tuple[Request | None, list[TaskRow]] | None = None,
) -> list[Outgoing]:
    """After a result: add the identities it found to the request's graph, plan what
    the graph and the finished tasks now allow (``streams.planning``), or respond when
    nothing is left. With ``resend``, every pending task is sent again, with the graph
    the ledger keeps; with ``closing`` (timed out), nothing new is asked.

    ``read`` is the request and its tasks if the caller has just read them."""
    row, tasks = read or ctx.ledger.progress(request_id)
    if row is None:
        return []
    if row.status != "fanned_out":
        return finish(ctx, request_id) if row.completed_at else []
    kept = ctx.ledger.merge_identities(request_id, found) if found else ctx.ledger.identities(row)
    event = ctx.ledger.request_event(row)
    graph = identity_graph(event, kept)
    refused = ctx.ledger.refused_parts(row)
    plans = next_step(ctx, event, graph, planned(tasks), closing=closing, refused=refused)
    if plans:
        tasks = ctx.ledger.add_wave(request_id, plans)
    new = {p.task_id for p in plans if p.status is TaskStatus.PENDING}
    pending = [t for t in tasks if t.status == TaskStatus.PENDING]
    if not pending:
        return finish(ctx, request_id, read=(row, tasks))
    return task_messages(
        ctx,
        event,
        graph,
        [t for t in pending if resend or t.task_id in new],
        as_utc(row.timeout_at) if row.timeout_at else None,
    )


def time_out(ctx: Pipeline, request_id: str) -> list[Outgoing]:
    """Past the request timeout: silent systems are timed out, unreached ones recorded."""
    ctx.ledger.time_out_tasks(request_id)
    return advance(ctx, request_id, [], closing=True)


def finish(
    ctx: Pipeline, request_id: str, read: tuple[Request | None, list[TaskRow]] | None = None
) -> list[Outgoing]:
    """Build the response and complete the request once; re-send an unpublished one.

    ``read`` is the request and its tasks if the caller has just read them."""
    row, tasks = read or (None, [])
    if row is None or row.completed_at is not None:  # a response may exist: look
        existing = ctx.ledger.response(request_id)
        if existing is not None:
            if existing.published_at:
                return []
            return [
                _response_message(request_id, existing.body, resend=True),
                notices.due(request_id, "response"),
            ]
        row, tasks = ctx.ledger.progress(request_id)
    if row is None:
        return []
    event = ctx.ledger.request_event(row)
    outcomes = task_outcomes(ctx, tasks)
    if event.kind in PACKAGE_KINDS:
        outcomes = withhold(outcomes, ctx.ledger.refused_parts(row))
    requested = [c.field for c in event.correction.changes] if event.correction else []
    summary = summarise(event.kind, outcomes, requested)
    status, reasons = summary.status, summary.reasons
    if row.status == "refused":
        status = ResponseStatus.REFUSED
        reasons = [Reason(code=row.hold_reason or "refused", message=_refusal_message(row))]
    purposes = None
    if event.kind is Kind.PURPOSE_NOTIFICATION:  # the purposes of the systems holding data
        holding = [o.system for o in outcomes if o.result and o.result.details.get(HOLDS_DATA)]
        purposes = [p.model_dump() for p in ctx.datamap.purposes_of(holding)]
    now = utcnow()
    response = ResponseEvent(
        request_id=request_id,
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
        purposes=purposes,
        extensions=row.extensions or [],
        revision=row.revision,
    )
    if status is not ResponseStatus.REFUSED or event.delivery.method == "written":
        response = _with_package(ctx, event, response, outcomes)
    body = response.model_dump(mode="json")
    seen = len(row.refused_parts or [])
    if not ctx.ledger.complete(request_id, status, body, response.latency_ms, seen):
        if ctx.ledger.response(request_id):
            return finish(ctx, request_id)
        now_row = ctx.ledger.request(request_id)
        if now_row and not now_row.completed_at and len(now_row.refused_parts or []) != seen:
            return finish(ctx, request_id)  # refused in part meanwhile: build it again
        return []
    crash_point("aggregate.completed")
    log.info(
        "request completed",
        extra={
            "request_id": request_id,
            "stage": "aggregate",
            "status": status,
            "latency_ms": response.latency_ms,
        },
    )
    return [_response_message(request_id, body), notices.due(request_id, "response")]


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
            _opened(ctx, TaskResult.model_validate(t.result)) if t.result else None,
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
        and _opened(ctx, TaskResult.model_validate(t.result)).details.get(HOLDS_DATA)
    }


def _opened(ctx: Pipeline, result: TaskResult) -> TaskResult:
    """``result`` with its personal fields opened (``services.crypto.sealing``), read back from
    the store first if it came by claim check (``services.delivery.claims``)."""
    if result.claim is not None:
        if ctx.claims is None:
            raise PoisonEvent("claimed task result", "this worker has no claim check store")
        try:
            result = ctx.claims.redeem(result)
        except (ObjectNotFound, ValueError) as exc:
            raise PoisonEvent("task result claim unusable", str(exc)[:500]) from None
    if result.sealed is None:
        return result
    if ctx.sealer is None:
        raise PoisonEvent("sealed task result", "this worker does not seal (DSR_SEAL_EVENTS)")
    try:
        return ctx.sealer.open(result)
    except (CryptoError, ValueError) as exc:
        raise PoisonEvent("task result does not open", str(exc)[:500]) from None


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


def _response_message(request_id: str, body: dict[str, Any], resend: bool = False) -> Outgoing:
    return Outgoing(topics.RESPONSES, request_id.encode(), json.dumps(body).encode(), resend)


def _ms(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() * 1000))


class PoisonEvent(Exception):
    """An event that can never be processed; it goes to the dead-letter topic."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail
