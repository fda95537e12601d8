"""The SQL connector's harnesses for the conformance kit: SQLite, and PostgreSQL."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa

from connectors.sql import SQLConnector
from connectors.testing import Harness, Seeded
from streams.records import Change
from tests.connectors.fixtures import ALICE, BOB, CONFIG, Database, seeded
from tests.fixtures.databases import POSTGRES_ADMIN_URL, sqlite_locked

#: Set on the PostgreSQL URL (the test server trusts loopback, so any password works).
PASSWORD = "pg-s3cret-for-the-kit"


class SQLiteHarness(Harness):
    """The seeded CRM: customers, orders with a suppression table, and provisions.

    SQLite URLs cannot carry a password, so there is no secret to check here;
    the PostgreSQL harness checks one.
    """

    connector_class = SQLConnector
    system = "crm"
    backend = "sqlite"
    database: Database

    def seed(self) -> Seeded:
        stack = contextlib.ExitStack()
        self.request.addfinalizer(stack.close)
        self.database = stack.enter_context(seeded(self.backend, self.tmp_path))
        return Seeded(
            subject=dict(ALICE),
            other=dict(BOB),
            correction=Change(field="name", value="Alice Corrected"),
        )

    def config(self) -> dict[str, Any]:
        return {**self.database.config(), "busy_timeout_s": 0.05}

    def raw_view(self) -> list[dict[str, Any]]:
        """Every row of the tables erasure reaches (the provision log is kept by law)."""
        return [
            {"table": t, **row}
            for t in ("customers", "orders", "orders_suppressed")
            for row in self.database.rows(t)
        ]

    def invalid_configs(self) -> list[Mapping[str, Any]]:
        good = {**copy.deepcopy(CONFIG), "url": "sqlite://"}
        return [
            {**good, "url": "not a url"},
            {**good, "tables": [], "provision_log": None},
            {**good, "tables": [{"name": "customers"}]},
            {**good, "busy_timeout_s": 0},
            {**good, "colour": "blue"},
        ]

    def break_transiently(self) -> contextlib.AbstractContextManager[None]:
        return sqlite_locked(self.database.url)


class PostgreSQLHarness(SQLiteHarness):
    """The same tables in a schema of their own, reached with a password and a lock timeout."""

    backend = "postgresql"

    def config(self) -> dict[str, Any]:
        url = f"{self.database.url}?options=-c%20lock_timeout%3D50"
        return {**self.database.config(), "url": url, "password": PASSWORD}

    def invalid_configs(self) -> list[Mapping[str, Any]]:
        good = {**copy.deepcopy(CONFIG), "url": POSTGRES_ADMIN_URL, "password": PASSWORD}
        return [{**good, "schema_name": ""}, {**good, "tables": "customers"}]

    def secrets(self) -> list[str]:
        return [PASSWORD]

    @contextlib.contextmanager
    def break_transiently(self) -> Iterator[None]:
        """Lock every table, so the connector's statements run into their lock timeout."""
        tables = ", ".join(f'"{t.schema}"."{t.name}"' for t in self.database.meta.tables.values())
        with self.database.engine.connect() as conn, conn.begin():
            conn.execute(sa.text(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE"))
            yield
