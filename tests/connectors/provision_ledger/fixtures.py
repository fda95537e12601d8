"""The provision-ledger connector's harnesses: a migrated ledger on SQLite and PostgreSQL,
seeded through the provision store."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa

from connectors.provision_ledger import ProvisionLedgerConnector
from connectors.testing import Harness, Seeded
from services.ledger import Ledger
from services.provisions.store import ProvisionStore
from tests.fixtures.databases import make_url, sqlite_locked
from tests.services.provisions.fixtures import ALICE, BOB, make, provision, receipt

#: Set on the PostgreSQL URL (the test server trusts loopback, so any password works).
PASSWORD = "pg-s3cret-for-the-ledger-kit"


def seed_ledger(url: str) -> None:
    """Alice: two provisions and a receipt; Bob: one provision to the same recipient."""
    ledger = Ledger(url)
    try:
        ledger.migrate()
        store = ProvisionStore(ledger.engine)
        for body in (
            provision("alice-1"),
            provision("alice-2", counterparty={"name": "Insure Co."}, items=["email"]),
            receipt("alice-r", ALICE),
            provision("bob-1", BOB),
        ):
            store.record(make(body), via="test")
    finally:
        ledger.close()


class SQLiteLedgerHarness(Harness):
    connector_class = ProvisionLedgerConnector
    system = "provision_ledger"
    backend = "sqlite"
    url: str

    def seed(self) -> Seeded:
        urls = make_url(self.backend, self.tmp_path)
        self.url = next(urls)
        self.request.addfinalizer(lambda: next(urls, None))
        seed_ledger(self.url)
        if self.backend == "sqlite":
            # rollback journal, so that an exclusive lock keeps readers out too
            with contextlib.closing(sqlite3.connect(self.url.removeprefix("sqlite:///"))) as db:
                db.execute("PRAGMA journal_mode=DELETE")
        return Seeded(subject=dict(ALICE), other=dict(BOB))

    def config(self) -> dict[str, Any]:
        return {"url": self.url, "lock_timeout_s": 0.05}

    def invalid_configs(self) -> list[Mapping[str, Any]]:
        return [{"url": "not a url"}, {"lock_timeout_s": 0}, {"colour": "blue"}]

    def break_transiently(self) -> contextlib.AbstractContextManager[None]:
        return sqlite_locked(self.url)


class PostgreSQLLedgerHarness(SQLiteLedgerHarness):
    """The ledger in a schema of its own, reached with a password and a lock timeout."""

    backend = "postgres"

    def config(self) -> dict[str, Any]:
        return {"url": f"{self.url}%20-c%20lock_timeout%3D50", "password": PASSWORD}

    def secrets(self) -> list[str]:
        return [PASSWORD]

    @contextlib.contextmanager
    def break_transiently(self) -> Iterator[None]:
        """Lock the provision tables, so the connector's statements hit their lock timeout."""
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn, conn.begin():
                conn.execute(
                    sa.text(
                        "LOCK TABLE provision_records, provision_subjects, provision_stops "
                        "IN ACCESS EXCLUSIVE MODE"
                    )
                )
                yield
        finally:
            engine.dispose()
