"""Aggregation: collect per-system results; when all are in, or time is up, respond."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from services.faults import crash_point
from services.ledger import as_utc
from services.ledger.models import Request
from services.ledger.models import Task as TaskRow
from streams.agents.decode import Parsed, parse_result
from streams.agents.respond import Built, conclude, finish, prepare
from streams.context import Outgoing, Pipeline
from streams.planning import identity_graph, next_step, planned, task_messages
from streams.records import Task, TaskStatus, utcnow

log = logging.getLogger("dsr.aggregate")


def handle_result(ctx: Pipeline, raw: bytes) -> list[Outgoing]:
    """One result event: recorded, then its request advanced."""
    [progress] = record(ctx, [parse_result(ctx, raw)])
    return advance(ctx, progress.request_id, resend=progress.resend, read=progress.read)


@dataclass
class Progress:
    """What a batch of results did to one request, to advance it once."""

    request_id: str
    read: tuple[Request | None, list[TaskRow]]
    #: A result was redelivered: send every pending task again (runners are idempotent).
    resend: bool = False
    #: Where the results came from in the batch (``record``'s input).
    sources: list[int] = field(default_factory=list)

    def advance(self, ctx: Pipeline) -> list[Outgoing] | Built:
        """What advancing the request sends; or its response, if it is done, for the
        caller to complete with others' (``respond.conclude``)."""
        return step(ctx, self.request_id, resend=self.resend, read=self.read)


def record(ctx: Pipeline, batch: list[Parsed]) -> list[Progress]:
    """Record a batch of results, and the identities their lookups found, in one ledger
    transaction; one ``Progress`` a request.

    A redelivered result means the worker may have died after recording it but before
    sending what it unlocked, so its request re-sends every pending task."""
    found: dict[str, list[dict[str, str]]] = {}
    for parsed in batch:
        if parsed.found:  # the ledger merges them (``merge_units``)
            found.setdefault(parsed.result.request_id, []).extend(parsed.found)
    recorded = ctx.ledger.record_results([p.result for p in batch], found)
    crash_point("aggregate.recorded")
    progress: dict[str, Progress] = {}
    for i, (parsed, rec) in enumerate(zip(batch, recorded, strict=True)):
        result = parsed.result
        # An ok result is the common case, five lines a request at 5 systems: debug;
        # a failure, and a redelivery, stay in the log.
        log.log(
            logging.DEBUG if rec.first and result.status == "ok" else logging.INFO,
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
        step.resend |= not rec.first
        step.sources.append(i)
    return list(progress.values())


def advance(
    ctx: Pipeline,
    request_id: str,
    *,
    resend: bool = False,
    closing: bool = False,
    read: tuple[Request | None, list[TaskRow]] | None = None,
) -> list[Outgoing]:
    """After a result: plan what the request's graph (its identifiers, and what its
    lookups found, kept with their results) and its finished tasks now allow
    (``streams.planning``), or respond when nothing is left. With ``resend``, every
    pending task is sent again; with ``closing`` (timed out), nothing new is asked.

    ``read`` is the request and its tasks if the caller has just read them."""
    done = step(ctx, request_id, resend=resend, closing=closing, read=read)
    return conclude(ctx, [done]) if isinstance(done, Built) else done


def step(
    ctx: Pipeline,
    request_id: str,
    *,
    resend: bool = False,
    closing: bool = False,
    read: tuple[Request | None, list[TaskRow]] | None = None,
) -> list[Outgoing] | Built:
    """``advance``, but a request with nothing left gives its response ``Built``, not
    yet completed."""
    row, tasks = read or ctx.ledger.progress(request_id)
    if row is None:
        return []
    if row.status != "fanned_out":
        return finish(ctx, request_id) if row.completed_at else []
    if not (resend or closing) and still_running(ctx, tasks):
        return []  # the common result of a burst: the request is not opened to learn it
    return planned_step(ctx, row, tasks, resend=resend, closing=closing)


def still_running(ctx: Pipeline, tasks: list[TaskRow]) -> bool:
    """Whether every system of the data map has its action task, and a task is pending:
    then a result neither plans a task (planning only decides systems without one) nor
    completes the request, so ``planned_step`` would send nothing new."""
    acting = {t.system for t in tasks if not Task.is_lookup_id(t.task_id)}
    return acting >= ctx.datamap.systems.keys() and any(
        t.status == TaskStatus.PENDING for t in tasks
    )


def planned_step(
    ctx: Pipeline, row: Request, tasks: list[TaskRow], *, resend: bool, closing: bool
) -> list[Outgoing] | Built:
    """``step`` for a fanned-out request, with its graph and plans worked out in full."""
    request_id = row.request_id
    event = ctx.ledger.request_event(row)
    graph = identity_graph(event, ctx.ledger.identities(row))
    refused = ctx.ledger.refused_parts(row)
    plans = next_step(ctx, event, graph, planned(tasks), closing=closing, refused=refused)
    new = {p.task_id for p in plans if p.status is TaskStatus.PENDING}
    sends = new or (resend and any(t.status == TaskStatus.PENDING for t in tasks))
    timeout_at = as_utc(row.timeout_at) if row.timeout_at else None
    extended = None
    if sends and timeout_at is not None and timeout_at <= (now := utcnow()):
        # Tasks sent after the timeout: the results that unlock them (or a redelivered
        # one) were read late, the pipeline behind them (its ledger away, a backlog), and
        # their systems had answered in time (``streams.timeouts``). The tasks sent get
        # the request timeout afresh.
        timeout_at = extended = now + ctx.request_timeout
    if plans or extended:
        tasks = ctx.ledger.add_wave(request_id, plans, extended)
    pending = [t for t in tasks if t.status == TaskStatus.PENDING]
    if not pending:
        return prepare(ctx, request_id, read=(row, tasks), event=event)
    return task_messages(
        ctx, event, graph, [t for t in pending if resend or t.task_id in new], timeout_at
    )


def time_out(ctx: Pipeline, request_id: str) -> list[Outgoing]:
    """Past the request timeout: silent systems are timed out, unreached ones recorded."""
    ctx.ledger.time_out_tasks(request_id)
    return advance(ctx, request_id, closing=True)
