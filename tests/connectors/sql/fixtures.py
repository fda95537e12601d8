"""The SQL connector's harnesses for the conformance kit (SQLite, and PostgreSQL), and a
loyalty programme keyed by (country_code, phone) on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.schema import CreateSchema, DropSchema

from connectors.sql import SQLConnector
from connectors.testing import Harness, Seeded
from streams.records import Change
from tests.connectors.fixtures import ALICE, BOB, CONFIG, Database, seeded
from tests.fixtures.databases import POSTGRES_ADMIN_URL, postgres_reachable, sqlite_locked

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
        return {**self.database.config(), "lock_timeout_s": 0.05}

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
            {**good, "lock_timeout_s": 0},
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


# -- a loyalty programme keyed by (country_code, phone) ------------------------

#: Taro, a Japanese member; his look-alike Somchai has the same national number in Thailand.
TARO_JP = {"country_code": "81", "phone": "9012345678"}
TARO_EMAIL = {"email": "taro@example.jp"}

LOYALTY_SEED: dict[str, list[dict[str, Any]]] = {
    # Taro has a phone in Japan and one in Thailand. Mixing the parts of his two
    # accounts would reach Somchai (66, 9012345678) and Hanako (81, 811112222).
    "accounts": [
        {"id": 1, "email": "taro@example.jp", "country_code": "81", "phone": "9012345678"},
        {"id": 2, "email": "taro@example.jp", "country_code": "66", "phone": "811112222"},
        {"id": 3, "email": "somchai@example.th", "country_code": "66", "phone": "9012345678"},
    ],
    "loyalty_members": [
        {
            "id": 1,
            "country_code": "81",
            "phone": "9012345678",
            "customer_id": 42,
            "name": "Taro Yamada",
            "points": 120,
            "suspended": False,
        },
        {
            "id": 2,
            "country_code": "66",
            "phone": "9012345678",
            "customer_id": 7,
            "name": "Somchai Thai",
            "points": 900,
            "suspended": False,
        },
        {
            "id": 3,
            "country_code": "66",
            "phone": "811112222",
            "customer_id": 43,
            "name": "Taro in Bangkok",
            "points": 5,
            "suspended": False,
        },
        {
            "id": 4,
            "country_code": "81",
            "phone": "811112222",
            "customer_id": 8,
            "name": "Hanako Look-alike",
            "points": 60,
            "suspended": False,
        },
    ],
    "rewards": [
        {"id": 1, "customer_id": 42, "reward": "JP voucher"},
        {"id": 2, "customer_id": 7, "reward": "Somchai voucher"},
        {"id": 3, "customer_id": 43, "reward": "TH voucher"},
        {"id": 4, "customer_id": 8, "reward": "Hanako voucher"},
    ],
    "loyalty_provisions": [
        {
            "id": 1,
            "country_code": "81",
            "phone": "9012345678",
            "recipient": "Acme Air",
            "stopped": False,
        },
        {
            "id": 2,
            "country_code": "66",
            "phone": "9012345678",
            "recipient": "Acme Air",
            "stopped": False,
        },
    ],
}


def phone_key() -> list[dict[str, str]]:
    return [
        {"column": "country_code", "identifier": "country_code"},
        {"column": "phone", "identifier": "phone"},
    ]


LOYALTY_CONFIG: dict[str, Any] = {
    "tables": [
        {
            "name": "accounts",
            "key": {"column": "email", "identifier": "email"},
            "identifiers": {"country_code": "country_code", "phone": "phone"},
        },
        {
            "name": "loyalty_members",
            "key": phone_key(),
            "identifiers": {"customer_id": "customer_id"},
            "columns": ["country_code", "phone", "name", "points"],
            "correctable": ["name"],
            "erasure": {"strategy": "delete"},
            "suspension": {"flag_column": "suspended"},
        },
        {
            "name": "rewards",
            "key": {"column": "customer_id", "identifier": "customer_id"},
            "erasure": {"strategy": "delete"},
        },
    ],
    "provision_log": {
        "table": "loyalty_provisions",
        "key": phone_key(),
        "columns": ["recipient"],
        "stopped_column": "stopped",
    },
}


def define_loyalty(meta: sa.MetaData) -> None:
    def phone_columns() -> list[sa.Column[Any]]:
        return [
            sa.Column("country_code", sa.String(4), nullable=False),
            sa.Column("phone", sa.String(20), nullable=False),
        ]

    sa.Table(
        "accounts",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(200), nullable=False),
        *phone_columns(),
    )
    sa.Table(
        "loyalty_members",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        *phone_columns(),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("points", sa.Integer, nullable=False),
        sa.Column("suspended", sa.Boolean, nullable=False),
        sa.UniqueConstraint("country_code", "phone"),
    )
    sa.Table(
        "rewards",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("reward", sa.String(100), nullable=False),
    )
    sa.Table(
        "loyalty_provisions",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        *phone_columns(),
        sa.Column("recipient", sa.String(100), nullable=False),
        sa.Column("stopped", sa.Boolean, nullable=False),
    )


@dataclass
class Loyalty:
    """The seeded loyalty database on one backend, and connectors built against it."""

    url: str
    engine: sa.Engine
    meta: sa.MetaData
    connectors: list[SQLConnector] = field(default_factory=list)

    def config(self) -> dict[str, Any]:
        cfg = copy.deepcopy(LOYALTY_CONFIG)
        cfg["url"] = self.url
        if self.meta.schema:
            cfg["schema_name"] = self.meta.schema
        return cfg

    def connector(self, config: dict[str, Any] | None = None) -> SQLConnector:
        connector = SQLConnector("loyalty", config or self.config())
        self.connectors.append(connector)
        return connector

    def rows(self, table: str) -> list[dict[str, Any]]:
        schema = self.meta.schema
        t = self.meta.tables[f"{schema}.{table}" if schema else table]
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(t).order_by(t.c.id)).mappings()]

    def ids(self, table: str) -> list[int]:
        return [r["id"] for r in self.rows(table)]


@contextlib.contextmanager
def loyalty_database(url: str, schema: str | None = None) -> Iterator[Loyalty]:
    """The loyalty tables, seeded, in ``url`` (and ``schema``); dropped afterwards."""
    engine = sa.create_engine(url)
    meta = sa.MetaData(schema=schema)
    define_loyalty(meta)
    database = Loyalty(url, engine, meta)
    meta.create_all(engine)
    try:
        with engine.begin() as conn:
            for name, rows in LOYALTY_SEED.items():
                conn.execute(meta.tables[f"{schema}.{name}" if schema else name].insert(), rows)
        yield database
    finally:
        for connector in database.connectors:
            connector.close()
        meta.drop_all(engine)
        engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        "mariadb",
    ]
)
def loyalty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Loyalty]:
    """The loyalty database on SQLite, PostgreSQL (if reachable) and a private MariaDB."""
    backend = request.param
    if backend == "sqlite":
        with loyalty_database(f"sqlite:///{tmp_path / 'loyalty.db'}") as database:
            yield database
        return
    if backend == "mariadb":
        with loyalty_database(request.getfixturevalue("mariadb_url")) as database:
            yield database
        return
    if not postgres_reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    schema = f"dsr_loyalty_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(CreateSchema(schema))
    try:
        with loyalty_database(POSTGRES_ADMIN_URL, schema) as database:
            yield database
    finally:
        with admin.begin() as conn:
            conn.execute(DropSchema(schema, cascade=True))
        admin.dispose()
