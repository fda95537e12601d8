"""Which systems a request reaches, and in which order: resolve first, then act.

Resolve: every request first runs read-only lookup tasks in the systems that
discover identifiers, in waves, until its identity graph is closed (no lookup
unlocks a system not looked up yet). The graph is an ordered list of identity
units, identifiers that belong together; the request's own identifiers are the
first (the CRM finds the ``customer_id`` that unlocks the orders database).

Act: only then is every system's task planned, each given the units of the whole
graph that supply one of its keys. For the kinds that change data, a system that
supplied identifiers another system's key uses is acted on after that one has
finished (``DataMap.discovery_order``), and for erasure a system listed in
another's ``erase_after`` must finish first. The graph is kept in the ledger, so
a retry or a redrive after the source was erased still reaches the dependant. A
system that can never run is recorded as not applicable, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.datamap import MY_NUMBER, SystemSpec, strongly_connected
from services.ledger import TaskPlan
from services.ledger.models import Task as TaskRow
from streams import topics
from streams.context import Outgoing, Pipeline
from streams.records import (
    DESTRUCTIVE_KINDS,
    Kind,
    Reason,
    RefusedPart,
    RequestEvent,
    Task,
    TaskResult,
    TaskStatus,
    dump,
    merge_units,
    utcnow,
)

Unit = Mapping[str, str]
_UNFINISHED = (TaskStatus.FAILED, TaskStatus.TIMED_OUT)


@dataclass(frozen=True)
class Planned:
    """What the ledger knows of a system's task so far."""

    system: str
    wave: int
    status: TaskStatus
    #: A lookup task of the resolve phase, not an action.
    lookup: bool = False


def identity_graph(event: RequestEvent, found: Sequence[Unit]) -> list[dict[str, str]]:
    """The request's identity graph: its own identifiers, then the units found."""
    return merge_units([event.subject.identifiers], found)


def units_for(spec: SystemSpec, graph: Sequence[Unit]) -> list[dict[str, str]]:
    """The units of ``graph`` that supply one of the system's keys, as it may receive
    them: only the identifiers its keys use (a system keyed by customer id is not sent
    the email), each unit once and none inside another, and never a My Number to a
    system not cleared for it."""
    names = spec.identifier_names
    used = ({k: v for k, v in _shared(spec, u).items() if k in names} for u in graph)
    units = merge_units([], used)
    return [u for u in units if spec.key_for(u) is not None]


def _shared(spec: SystemSpec, unit: Unit) -> dict[str, str]:
    return {k: v for k, v in unit.items() if spec.my_number_cleared or k != MY_NUMBER}


def next_step(
    ctx: Pipeline,
    event: RequestEvent,
    graph: Sequence[Unit],
    planned: Sequence[Planned],
    *,
    closing: bool = False,
    refused: Sequence[RefusedPart] = (),
) -> list[TaskPlan]:
    """The tasks to plan now: the next lookup wave while the graph is not closed, then
    the actions ``next_wave`` allows. ``closing`` (the request timed out): no more
    lookups, and every action not planned yet is recorded as timed out. A system whose
    whole part an operator ``refused`` is still looked up, but never asked to act."""
    lookups = [p for p in planned if p.lookup]
    actions = [p for p in planned if not p.lookup]
    if not actions and not closing:
        if any(p.status is TaskStatus.PENDING for p in lookups):
            return []
        plans = _lookup_wave(ctx, event, graph, lookups)
        if plans:
            return plans
    return next_wave(ctx, event, graph, actions, lookups, closing=closing, refused=refused)


def resolves(ctx: Pipeline, system: str) -> bool:
    """Whether the resolve phase looks the principal up in ``system``."""
    spec = ctx.datamap.systems[system]
    return bool(spec.discovers) and not spec.excluded and ctx.does(system, Kind.DISCLOSURE)


def _lookup_wave(
    ctx: Pipeline, event: RequestEvent, graph: Sequence[Unit], done: Sequence[Planned]
) -> list[TaskPlan]:
    """Lookups in the systems the graph now unlocks that were not looked up yet."""
    seen = {p.system for p in done}
    wave = max((p.wave for p in done), default=-1) + 1
    return [
        TaskPlan(
            Task.make_lookup_id(event.request_id, system, wave),
            system,
            event.kind,
            wave,
            TaskStatus.PENDING,
        )
        for system, spec in sorted(ctx.datamap.systems.items())
        if system not in seen and resolves(ctx, system) and units_for(spec, graph)
    ]


def next_wave(
    ctx: Pipeline,
    event: RequestEvent,
    graph: Sequence[Unit],
    planned: Sequence[Planned],
    lookups: Sequence[Planned] = (),
    *,
    closing: bool = False,
    refused: Sequence[RefusedPart] = (),
) -> list[TaskPlan]:
    """Action plans for the systems not planned yet: those that can run now, and those
    the closed graph never reaches. ``closing``: none can run now."""
    wave = _Wave.of(ctx, event, graph, planned, lookups, closing, refused)
    number = max((p.wave for p in planned), default=-1) + 1
    in_flight = any(p.status is TaskStatus.PENDING for p in [*planned, *lookups])
    plans: list[TaskPlan] = []
    while True:
        decided, waiting = wave.decide()
        for system, (status, reason) in decided.items():
            refusal = wave.refusal(system) if status is TaskStatus.REFUSED else None
            plans.append(_plan(event, system, number, status, reason, refusal))
        if decided and waiting:
            continue  # a system decided this pass may release one that waits on it
        if not waiting or in_flight or any(p.status is TaskStatus.PENDING for p in plans):
            return plans
        # Stuck: systems that supplied each other's keys wait on each other. The graph is
        # kept, so they stop waiting on each other (erase_after cycles are refused at load).
        if not wave.order:
            raise RuntimeError(f"erase_after holds {waiting} back in a cycle")
        wave.order = _untied(wave.order, waiting)


@dataclass
class _Wave:
    """What one wave's planning knows: each system's status so far (``state``), the
    systems an operator refused whole (``withheld``), the lookups not finished
    (``unresolved``) and which systems' identifiers lead to which (``order``)."""

    ctx: Pipeline
    event: RequestEvent
    graph: Sequence[Unit]
    closing: bool
    state: dict[str, TaskStatus]
    withheld: dict[str, Reason]
    unresolved: set[str]
    order: dict[str, set[str]]

    @classmethod
    def of(
        cls,
        ctx: Pipeline,
        event: RequestEvent,
        graph: Sequence[Unit],
        planned: Sequence[Planned],
        lookups: Sequence[Planned],
        closing: bool,
        refused: Sequence[RefusedPart],
    ) -> _Wave:
        systems = ctx.datamap.systems
        destructive = event.kind in DESTRUCTIVE_KINDS
        return cls(
            ctx,
            event,
            graph,
            closing=closing,
            state={p.system: p.status for p in planned},
            withheld={
                s: p.as_reason(s) for p in refused if not p.fields for s in systems if p.covers(s)
            },
            unresolved={p.system for p in lookups if p.status in _UNFINISHED},
            order=ctx.datamap.discovery_order(event.subject.identifiers) if destructive else {},
        )

    def decide(self) -> tuple[dict[str, tuple[TaskStatus, str]], list[str]]:
        """One pass over the systems not yet decided: those decided now (recorded in
        ``state``), and those still waiting on another."""
        decided: dict[str, tuple[TaskStatus, str]] = {}
        waiting: list[str] = []
        for system, spec in sorted(self.ctx.datamap.systems.items()):
            if system in self.state:
                continue
            now = self.status(system, spec)
            if now is None:
                waiting.append(system)
                continue
            self.state[system] = now[0]
            decided[system] = now
        return decided, waiting

    def status(self, system: str, spec: SystemSpec) -> tuple[TaskStatus, str] | None:
        """The system's status in this wave, and why; None while it waits on another."""
        kind = self.event.kind
        status, reason = _decide(
            self.ctx, system, spec, kind, self.graph, self.withheld.get(system)
        )
        if status is None:
            # The graph is closed: nothing will unlock it. Record why, then look again,
            # since an erase_after on a system that never runs holds no one back.
            status, reason = _unreached(self.ctx, system, reason, self.unresolved)
        if status is TaskStatus.PENDING and self.closing:
            return TaskStatus.TIMED_OUT, "not asked before the request timeout"
        if status is TaskStatus.PENDING:
            return _after(system, spec, kind, self.state, self.order)
        return status, reason

    def refusal(self, system: str) -> Reason | None:
        spec = self.ctx.datamap.systems[system]
        return _refusal(system, spec, self.event.kind, self.withheld.get(system))


def _untied(order: Mapping[str, set[str]], waiting: Sequence[str]) -> dict[str, set[str]]:
    """``order`` without the waits of ``waiting`` systems on others of their cycle."""
    among = {s: order.get(s, set()) & set(waiting) for s in waiting}
    component = strongly_connected(among)
    untied = {s: set(deps) for s, deps in order.items()}
    for system in waiting:
        tied = {s for s in waiting if component[s] == component[system]}
        untied[system] = untied.get(system, set()) - tied
    return untied if untied != order else {}


def _refusal(system: str, spec: SystemSpec, kind: Kind, operator: Reason | None) -> Reason | None:
    """Why the system's part is refused: by an operator, or by the data map's rule."""
    if operator is not None:
        return operator
    if (rule := spec.refusal_for(kind)) is None:
        return None
    return Reason(code=rule.code, message=rule.reason, message_ja=rule.reason_ja, system=system)


def _decide(
    ctx: Pipeline,
    system: str,
    spec: SystemSpec,
    kind: Kind,
    graph: Sequence[Unit],
    operator: Reason | None = None,
) -> tuple[TaskStatus | None, str]:
    """The system's status if it is decided without waiting on another; None if no key
    of it is known. ``operator``: an operator refused the system's part."""
    if spec.excluded:
        return TaskStatus.NOT_APPLICABLE, f"excluded: {spec.excluded} store"
    if (refusal := _refusal(system, spec, kind, operator)) is not None:
        return TaskStatus.REFUSED, refusal.message
    if not ctx.supports(system, kind):
        return TaskStatus.NOT_APPLICABLE, f"{system} does not support {kind}"
    if not units_for(spec, graph):
        return None, f"no identifier {spec.identifiers} known for {system}"
    return TaskStatus.PENDING, ""


def _after(
    system: str,
    spec: SystemSpec,
    kind: Kind,
    state: Mapping[str, TaskStatus],
    order: Mapping[str, set[str]],
) -> tuple[TaskStatus, str] | None:
    """A ready system's status once the systems it comes after have finished; None
    while one of them has not."""
    if kind is Kind.ERASURE:
        for dep in spec.erase_after:
            dep_status = state.get(dep)
            if dep_status is None or dep_status is TaskStatus.PENDING:
                return None
            if dep_status in _UNFINISHED:
                return TaskStatus.FAILED, f"not erased: {dep}, erased before it, did not finish"
    if any(state.get(dep) in (None, TaskStatus.PENDING) for dep in order.get(system, ())):
        return None  # a system its identifiers lead to is not finished yet
    return TaskStatus.PENDING, ""


def _unreached(
    ctx: Pipeline, system: str, reason: str, unresolved: set[str]
) -> tuple[TaskStatus, str]:
    """Why a system no key of which is known is not asked: not applicable, or failed
    when a lookup that could have found its key did not finish."""
    names = ctx.datamap.systems[system].identifier_names
    sources = sorted(
        s for s in unresolved if s != system and set(ctx.datamap.systems[s].discovers) & names
    )
    if sources:
        return TaskStatus.FAILED, (
            f"not reached: the lookup in {', '.join(sources)}, which finds its identifiers, "
            "did not finish"
        )
    return TaskStatus.NOT_APPLICABLE, reason


def _plan(
    event: RequestEvent,
    system: str,
    wave: int,
    status: TaskStatus,
    reason: str,
    refusal: Reason | None = None,
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
            refusal=refusal,
            attempts=0,
            started_at=utcnow(),
        ).model_dump(mode="json")
    return TaskPlan(task_id, system, event.kind, wave, status, reason or None, result)


def planned(tasks: Sequence[TaskRow]) -> list[Planned]:
    return [
        Planned(t.system, t.wave, TaskStatus(t.status), Task.is_lookup_id(t.task_id)) for t in tasks
    ]


def task_messages(
    ctx: Pipeline,
    event: RequestEvent,
    graph: Sequence[Unit],
    pending: Sequence[TaskRow],
    not_after: datetime | None = None,
) -> list[Outgoing]:
    """One message per pending task, with the units of ``graph`` its system is keyed by,
    its personal data sealed when the pipeline seals; ``not_after`` is the request's
    timeout, past which a runner skips the task."""
    key = event.request_id.encode()

    def sealed(task: Task) -> Task:
        return ctx.sealer.seal(task) if ctx.sealer is not None else task

    def message(row: TaskRow) -> Outgoing:
        spec = ctx.datamap.systems[row.system]
        lookup = Task.is_lookup_id(row.task_id)
        task = Task(
            request_id=event.request_id,
            task_id=row.task_id,
            system=row.system,
            kind=event.kind,
            wave=row.wave,
            identifiers=_shared(spec, event.subject.identifiers),
            identities=units_for(spec, graph),
            lookup=lookup,
            changes=list(event.correction.changes) if event.correction and not lookup else [],
            grounds=list(event.grounds or []),
            not_after=not_after,
        )
        return Outgoing(topics.tasks_topic(row.system), key, dump(sealed(task)))

    return [message(t) for t in pending]
