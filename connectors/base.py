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
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, ValidationError

from connectors.errors import ConfigError, NotSupported
from connectors.results import CheckResult, OperationResult
from streams.records import Change, Kind

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
