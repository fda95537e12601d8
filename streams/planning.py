"""Which systems a request reaches, and in which wave.

A system runs once the request knows one of the identifiers it is keyed by:
from the request itself, or discovered by a system of an earlier wave (the CRM
finds the ``customer_id`` that unlocks the orders database). For erasure, a
system listed in another's ``erase_after`` must finish first. A system that can
never run is recorded as not applicable, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from services.datamap import MY_NUMBER, RefusalRule, SystemSpec
from services.ledger import TaskPlan
from services.ledger.models import Task as TaskRow
from streams import topics
from streams.context import Outgoing, Pipeline
from streams.records import (
    Kind,
    Reason,
    RequestEvent,
    Task,
    TaskResult,
    TaskStatus,
    dump,
    utcnow,
)

V = TypeVar("V")


@dataclass(frozen=True)
class Planned:
    """What the ledger knows of a system's task so far."""

    system: str
    wave: int
    status: TaskStatus


def next_wave(
    ctx: Pipeline,
    event: RequestEvent,
    discovered: Mapping[str, Sequence[str]],
    planned: Sequence[Planned],
) -> list[TaskPlan]:
    """Plans for the systems not planned yet: those that can run now, and, once nothing
    is left in flight, those that never can."""
    state = {p.system: p.status for p in planned}
    wave = max((p.wave for p in planned), default=-1) + 1
    known = set(event.subject.identifiers) | {k for k, v in discovered.items() if v}
    in_flight = TaskStatus.PENDING in state.values()
    plans: list[TaskPlan] = []
    while True:
        blocked: list[tuple[str, str]] = []
        for system, spec in sorted(ctx.datamap.systems.items()):
            if system in state:
                continue
            status, reason = _decide(ctx, system, spec, event.kind, known, state)
            if status is None:
                blocked.append((system, reason))
                continue
            state[system] = status
            refusal = spec.refusal_for(event.kind) if status is TaskStatus.REFUSED else None
            plans.append(_plan(event, system, wave, status, reason, refusal))
        if blocked and not in_flight and not any(p.status is TaskStatus.PENDING for p in plans):
            # Nothing can unlock them any more: record why, then look again, since an
            # erase_after on a system that will never run no longer holds anyone back.
            for system, reason in blocked:
                state[system] = TaskStatus.NOT_APPLICABLE
                plans.append(_plan(event, system, wave, TaskStatus.NOT_APPLICABLE, reason))
            continue
        return plans


def _decide(
    ctx: Pipeline,
    system: str,
    spec: SystemSpec,
    kind: Kind,
    known: set[str],
    state: Mapping[str, TaskStatus],
) -> tuple[TaskStatus | None, str]:
    if spec.excluded:
        return TaskStatus.NOT_APPLICABLE, f"excluded: {spec.excluded} store"
    if (rule := spec.refusal_for(kind)) is not None:
        return TaskStatus.REFUSED, rule.reason
    if not ctx.supports(system, kind):
        return TaskStatus.NOT_APPLICABLE, f"{system} does not support {kind}"
    if not any(set(k) <= known for k in spec.keys):
        return None, f"no identifier {spec.identifiers} known for {system}"
    if kind is Kind.ERASURE:
        for dep in spec.erase_after:
            dep_status = state.get(dep)
            if dep_status is None or dep_status is TaskStatus.PENDING:
                return None, f"{dep} was never erased"
            if dep_status in (TaskStatus.FAILED, TaskStatus.TIMED_OUT):
                return TaskStatus.FAILED, f"not erased: {dep}, erased before it, did not finish"
    return TaskStatus.PENDING, ""


def _plan(
    event: RequestEvent,
    system: str,
    wave: int,
    status: TaskStatus,
    reason: str,
    refusal: RefusalRule | None = None,
) -> TaskPlan:
    task_id = Task.make_id(event.request_id, system, event.kind, wave)
    result = None
    if refusal is not None:  # the system is never asked: its result is the refusal
        result = TaskResult(
            request_id=event.request_id,
            task_id=task_id,
            system=system,
            kind=event.kind,
            status="ok",
            refusal=Reason(code=refusal.code, message=refusal.reason, system=system),
            attempts=0,
            started_at=utcnow(),
        ).model_dump(mode="json")
    return TaskPlan(task_id, system, event.kind, wave, status, reason or None, result)


def planned(tasks: Sequence[TaskRow]) -> list[Planned]:
    return [Planned(t.system, t.wave, TaskStatus(t.status)) for t in tasks]


def task_messages(
    ctx: Pipeline,
    event: RequestEvent,
    discovered: Mapping[str, list[str]],
    pending: Sequence[TaskRow],
) -> list[Outgoing]:
    """One message per pending task, its personal data sealed when the pipeline seals."""
    key = event.request_id.encode()
    datamap = ctx.datamap

    def sealed(task: Task) -> Task:
        return ctx.sealer.seal(task) if ctx.sealer is not None else task

    def shareable(system: str, values: Mapping[str, V]) -> dict[str, V]:
        """A system not cleared for My Number never receives one, even if it was given."""
        if datamap.systems[system].my_number_cleared:
            return dict(values)
        return {k: v for k, v in values.items() if k != MY_NUMBER}

    return [
        Outgoing(
            topics.tasks_topic(t.system),
            key,
            dump(
                sealed(
                    Task(
                        request_id=event.request_id,
                        task_id=t.task_id,
                        system=t.system,
                        kind=event.kind,
                        wave=t.wave,
                        identifiers=shareable(t.system, event.subject.identifiers),
                        discovered=shareable(t.system, discovered),
                        changes=list(event.correction.changes) if event.correction else [],
                        grounds=list(event.grounds or []),
                    )
                )
            ),
        )
        for t in pending
    ]
