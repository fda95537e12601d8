"""The connector contract.

A connector reaches one kind of system (a SQL database, an object store, an
HTTP API). Subclass ``Connector``, set three class attributes and implement the
operations you declare::

    class CRMConnector(Connector[CRMConfig]):
        name = "crm"
        Config = CRMConfig
        capabilities = frozenset({Kind.DISCLOSURE, Kind.ERASURE})

        def check(self) -> CheckResult: ...
        def disclose(self, identifiers): ...
        def erase(self, identifiers, *, grounds, dry_run=False): ...

An operation the connector does not declare raises ``NotSupported``; the
fan-out asks ``supports(kind)`` first and records such a kind as not
applicable. Destructive operations take ``dry_run``: they then return what they
would change and change nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, ValidationError

from connectors.errors import ConfigError, NotSupported
from connectors.lookups import lookups, merge
from connectors.loop import run_coroutines
from connectors.results import CheckResult, OperationResult
from streams.records import HOLDS_DATA, Change, Kind, Reason, Task, TaskResult, answered_by

ConfigT = TypeVar("ConfigT", bound=BaseModel)

Identifiers = Mapping[str, str]


#: The method that answers each kind. ``purpose_notification`` is answered from the data map.
METHODS: dict[Kind, str] = {
    Kind.DISCLOSURE: "disclose",
    Kind.THIRD_PARTY_RECORDS: "third_party_records",
    Kind.CORRECTION: "correct",
    Kind.SUSPENSION: "suspend",
    Kind.ERASURE: "erase",
    Kind.THIRD_PARTY_STOP: "stop_third_party_provision",
}


class ConnectorBase(ABC, Generic[ConfigT]):
    """What every connector has: a name, a validated config and its capabilities.

    Subclass ``Connector`` (blocking I/O) or ``connectors.aio.AsyncConnector``
    (``async def`` operations), never this class directly.
    """

    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    capabilities: ClassVar[frozenset[Kind]] = frozenset()

    def __init__(self, system: str, config: Mapping[str, Any] | ConfigT) -> None:
        self.system = system
        self.config: ConfigT = self.validate_config(system, config)
        cls = type(self)
        contract = next(c for c in cls.__mro__ if "_contract" in c.__dict__)
        stubs = [
            k for k in cls.capabilities if getattr(cls, METHODS[k]) is getattr(contract, METHODS[k])
        ]
        if stubs:
            raise TypeError(f"{cls.__name__} declares {sorted(stubs)} but does not implement them")

    @classmethod
    def validate_config(cls, system: str, config: Mapping[str, Any] | BaseModel) -> ConfigT:
        """Validate ``config`` with ``Config``; a ``ConfigError`` names the system and field."""
        if isinstance(config, cls.Config):
            return cast(ConfigT, config)
        raw = config.model_dump() if isinstance(config, BaseModel) else dict(config)
        try:
            return cast(ConfigT, cls.Config.model_validate(raw))
        except ValidationError as exc:
            lines = [
                f"  {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            ]
            raise ConfigError(
                f"system {system!r}: invalid {cls.name} connector config\n" + "\n".join(lines)
            ) from None

    @classmethod
    def kinds_for(cls, config: ConfigT) -> frozenset[Kind]:
        """The kinds a system with ``config`` answers: override to narrow ``capabilities``
        by config. Asked of the class, so the pipeline learns what each system does from
        the data map without opening a connection or holding its secrets."""
        return cls.capabilities

    @property
    def supported_kinds(self) -> frozenset[Kind]:
        """The kinds this instance answers: ``kinds_for`` its config, never more than
        ``capabilities``."""
        return type(self).kinds_for(self.config) & self.capabilities

    def supports(self, kind: Kind) -> bool:
        return kind in self.supported_kinds

    def __repr__(self) -> str:
        return f"<{type(self).__name__} system={self.system!r}>"

    @abstractmethod
    def check(self) -> CheckResult | Awaitable[CheckResult]:
        """Reach the system and confirm the config matches it. Never raises for a bad config."""

    def close(self) -> None:
        """Release connections. Called once, when the runner stops."""

    def _not_supported(self, kind: Kind) -> NotSupported:
        return NotSupported(f"{self.name} connector for system {self.system!r} does not do {kind}")


class Connector(ConnectorBase[ConfigT]):
    """One system's connector, built from its validated config. Operations block."""

    _contract = True

    def __enter__(self) -> Connector[ConfigT]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- operations ---------------------------------------------------------

    @abstractmethod
    def check(self) -> CheckResult:
        """Reach the system and confirm the config matches it. Never raises for a bad config."""

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        """Return the subject's records, and only theirs."""
        raise self._not_supported(Kind.DISCLOSURE)

    def correct(
        self, identifiers: Identifiers, changes: Sequence[Change], *, dry_run: bool = False
    ) -> OperationResult:
        """Apply ``changes``; report old and new values, and fields not found."""
        raise self._not_supported(Kind.CORRECTION)

    def suspend(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        """Stop using the subject's data, keeping it."""
        raise self._not_supported(Kind.SUSPENSION)

    def erase(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        """Delete or anonymise the subject's data. Running it twice changes nothing more."""
        raise self._not_supported(Kind.ERASURE)

    def third_party_records(self, identifiers: Identifiers) -> OperationResult:
        """Return the records of the subject's data provided to third parties."""
        raise self._not_supported(Kind.THIRD_PARTY_RECORDS)

    def stop_third_party_provision(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        """Stop providing the subject's data to third parties."""
        raise self._not_supported(Kind.THIRD_PARTY_STOP)


def task_result(task: Task, started: datetime, attempts: int, **outcome: Any) -> TaskResult:
    """A result for ``task``: its identity, timing and attempts, plus ``outcome``."""
    return TaskResult(
        request_id=task.request_id,
        task_id=task.task_id,
        system=task.system,
        kind=task.kind,
        attempts=attempts,
        started_at=started,
        **outcome,
    )


def ok_result(
    task: Task, outcome: OperationResult, started: datetime, attempts: int = 1
) -> TaskResult:
    """The task's result, from what its operation returned (a dry run says so)."""
    withheld = outcome.withheld
    return task_result(
        task,
        started,
        attempts,
        status="ok",
        records=outcome.records,
        changed=outcome.changed,
        fields=outcome.fields,
        details={**outcome.details, **({"dry_run": True} if outcome.dry_run else {})},
        correction=outcome.correction,
        identities=outcome.units(),
        refusal=(
            Reason(
                code=withheld.code,
                message=withheld.reason,
                message_ja=withheld.reason_ja,
                system=task.system,
            )
            if withheld
            else None
        ),
    )


#: The task ``dispatch`` is running, for a blocking connector that keeps its own trail.
_current_task: ContextVar[Task | None] = ContextVar("dsr_current_task", default=None)


def current_request_id() -> str | None:
    """The request whose task a blocking connector is answering; None outside ``dispatch``."""
    task = _current_task.get()
    return task.request_id if task is not None else None


def dispatch(connector: ConnectorBase[Any], task: Task) -> OperationResult:
    """Run ``task`` on ``connector``: the one place that maps a kind to a method.

    An async connector's coroutines run on the event loop of ``connectors.loop``,
    in a thread of its own; the caller's thread waits for the result.
    """
    asked = _operation(task, connector)
    if not connector.supports(asked):
        raise connector._not_supported(asked)
    token = _current_task.set(task)
    try:
        calls = [call(connector, task, ids) for ids in lookups(task)]
    finally:
        _current_task.reset(token)
    result = merge(calls) if isinstance(connector, Connector) else merge(run_coroutines(calls))
    if task.lookup:
        # the resolve phase: who the principal is here, never what is held
        return OperationResult(
            details={HOLDS_DATA: bool(result.records), "records": len(result.records)},
            identities=result.units(),
        )
    if task.kind is Kind.PURPOSE_NOTIFICATION:
        # only whether the system holds data: no record leaves the runner
        return OperationResult(details={HOLDS_DATA: bool(result.records)})
    return result


def _operation(task: Task, connector: ConnectorBase[Any]) -> Kind:
    """The kind of operation ``task`` asks of ``connector``: a lookup is a read."""
    if task.lookup:
        return Kind.DISCLOSURE
    asked = answered_by(task.kind)
    return next((k for k in asked if connector.supports(k)), asked[0])


def check(connector: ConnectorBase[Any]) -> CheckResult:
    """``connector.check()``, awaited on the connectors' loop for an async connector."""
    result = connector.check()
    if isinstance(result, CheckResult):
        return result
    return run_coroutines([_awaited(result)])[0]


async def _awaited(value: Awaitable[CheckResult]) -> CheckResult:
    return await value


def call(connector: ConnectorBase[Any], task: Task, ids: Identifiers) -> Any:
    """Call the operation for ``task.kind``: a result, or a coroutine for an async one."""
    kind = _operation(task, connector)
    method = getattr(connector, METHODS[kind])
    if kind is Kind.CORRECTION:
        return method(ids, task.changes, dry_run=task.dry_run)
    if kind in (Kind.DISCLOSURE, Kind.THIRD_PARTY_RECORDS):
        return method(ids)
    return method(ids, grounds=task.grounds, dry_run=task.dry_run)
