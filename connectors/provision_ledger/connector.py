"""The provision-ledger connector: the pipeline's own Art. 29 / Art. 30 records.

``third_party_records`` lists the principal's records still within retention,
with all their items; ``stop_third_party_provision`` records a stop for every
recipient the principal's provision records name, after which the ledger
refuses further provision records for that principal and recipient.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy import exc as sa_exc

from connectors.base import Connector, Identifiers
from connectors.dispatch import current_request_id
from connectors.errors import ConfigError, ConnectorError
from connectors.provision_ledger.config import ProvisionLedgerConfig
from connectors.provision_ledger.rows import present
from connectors.results import CheckResult, OperationResult
from connectors.sql.engine import classify, postgres_options
from services.provisions.store import ProvisionStore
from streams.records import Kind

TABLES = ("provision_records", "provision_subjects", "provision_stops")


class ProvisionLedgerConnector(Connector[ProvisionLedgerConfig]):
    """Provision and receipt records kept in the ledger, by subject digest."""

    name = "provision_ledger"
    Config = ProvisionLedgerConfig
    capabilities = frozenset({Kind.THIRD_PARTY_RECORDS, Kind.THIRD_PARTY_STOP})

    def __init__(self, system: str, config: Mapping[str, Any] | ProvisionLedgerConfig) -> None:
        super().__init__(system, config)
        self._engine = _make_engine(system, self.config)
        self._store = ProvisionStore(self._engine)

    def __repr__(self) -> str:
        return f"<ProvisionLedgerConnector system={self.system!r} url={self.config.masked_url()!r}>"

    def check(self) -> CheckResult:
        try:
            with self._errors(), self._engine.connect() as conn:
                present_tables = set(inspect(conn).get_table_names())
        except ConnectorError as exc:
            return CheckResult(False, str(exc))
        missing = [t for t in TABLES if t not in present_tables]
        if missing:
            return CheckResult(False, f"the ledger has no {', '.join(missing)}: run migrations")
        return CheckResult(True, "the provision ledger's tables are there")

    def close(self) -> None:
        self._engine.dispose()

    def third_party_records(self, identifiers: Identifiers) -> OperationResult:
        with self._errors():
            rows = self._store.records_of(identifiers)
            stopped = self._store.stopped(identifiers) if rows else set()
        records = [present(r, stopped) for r in rows]
        return OperationResult(
            records=records, fields=sorted({k for r in records for k in r} - {"_source"})
        )

    def stop_third_party_provision(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        with self._errors():
            newly = self._store.stop(identifiers, current_request_id(), dry_run=dry_run)
        return OperationResult(
            changed=len(newly),
            fields=["stopped"] if newly else [],
            details={"recipients": newly},
            dry_run=dry_run,
        )

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sa_exc.SQLAlchemyError as exc:
            raise classify(self.system, exc) from exc


def _make_engine(system: str, cfg: ProvisionLedgerConfig) -> Engine:
    url = cfg.engine_url()
    kwargs: dict[str, Any] = {}
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite:
        kwargs["connect_args"] = {"timeout": cfg.lock_timeout_s, "check_same_thread": False}
    elif url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = postgres_options(url, cfg.lock_timeout_s)
    try:
        engine = create_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)
    except (ImportError, sa_exc.NoSuchModuleError, sa_exc.ArgumentError, TypeError) as exc:
        raise ConfigError(
            f"system {system!r}: cannot reach the ledger at this URL: {type(exc).__name__}"
        ) from None
    if sqlite:

        @event.listens_for(engine, "connect")
        def _foreign_keys(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine
