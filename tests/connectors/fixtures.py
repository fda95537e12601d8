"""A seeded database on SQLite and on PostgreSQL (when reachable), for the connector tests."""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer
from pydantic import BaseModel, ConfigDict
from sqlalchemy.schema import CreateSchema, DropSchema

from connectors import (
    CheckResult,
    FatalError,
    Identifiers,
    OperationResult,
    RetriableError,
    pseudonyms,
)
from connectors.base import Connector
from connectors.runner import ConnectorRunner
from connectors.sql import SQLConnector
from services.broker import EmbeddedBroker, create_topics
from services.settings import EMBEDDED_FETCH_MAX_WAIT_MS
from streams.records import Kind, TaskResult
from streams.topics import DEAD_LETTER, RESULTS, TopicSpec, core_topics, tasks_topic
from tests.fixtures.databases import POSTGRES_ADMIN_URL, postgres_reachable

ALICE = {"email": "alice@example.com"}
BOB = {"email": "bob@example.com"}
#: The erasure key the connector tests run under (the runner's comes from the key provider).
ERASURE_KEY = bytes(range(32))


@pytest.fixture(autouse=True)
def erasure_key() -> Iterator[bytes]:
    """Set the ``hash`` erasure key, as the connector runner does at start-up."""
    pseudonyms.configure(ERASURE_KEY)
    yield ERASURE_KEY
    pseudonyms.configure(None)


def define_tables(meta: sa.MetaData) -> None:
    sa.Table(
        "customers",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(200), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("phone", sa.String(40)),
        sa.Column("birthday", sa.Date),
        sa.Column("processing_suspended", sa.Boolean, nullable=False, default=False),
    )
    for name in ("orders", "orders_suppressed"):
        sa.Table(
            name,
            meta,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("customer_id", sa.Integer, nullable=False),
            sa.Column("item", sa.String(100), nullable=False),
            sa.Column("address", sa.String(200)),
        )
    sa.Table(
        "provisions",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(200), nullable=False),
        sa.Column("recipient", sa.String(100), nullable=False),
        sa.Column("purpose", sa.String(100), nullable=False),
        sa.Column("provided_at", sa.DateTime, nullable=False),
        sa.Column("stopped", sa.Boolean, nullable=False, default=False),
    )


SEED: dict[str, list[dict[str, Any]]] = {
    "customers": [
        {
            "id": 1,
            "email": "alice@example.com",
            "name": "Alice Example",
            "phone": "+81-3-0000-0001",
            "birthday": date(1990, 1, 2),
        },
        {
            "id": 2,
            "email": "bob@example.com",
            "name": "Bob Other",
            "phone": "+81-3-0000-0002",
            "birthday": date(1985, 5, 6),
        },
    ],
    "orders": [
        {"id": 10, "customer_id": 1, "item": "book", "address": "1 Alice Street"},
        {"id": 11, "customer_id": 1, "item": "lamp", "address": "1 Alice Street"},
        {"id": 12, "customer_id": 2, "item": "pen", "address": "2 Bob Road"},
    ],
    "provisions": [
        {
            "id": 100,
            "email": "alice@example.com",
            "recipient": "Acme Logistics",
            "purpose": "delivery",
            "provided_at": datetime(2024, 4, 1, 9, 30),
        },
        {
            "id": 101,
            "email": "bob@example.com",
            "recipient": "Acme Logistics",
            "purpose": "delivery",
            "provided_at": datetime(2024, 4, 2, 9, 30),
        },
    ],
}

CONFIG: dict[str, Any] = {
    "tables": [
        {
            "name": "customers",
            "key": {"column": "email", "identifier": "email"},
            "identifiers": {"customer_id": "id"},
            "correctable": ["name", "phone", "birthday", "email"],
            "erasure": {
                "columns": {"email": "hash", "name": "mask", "phone": None, "birthday": None}
            },
            "suspension": {"flag_column": "processing_suspended"},
        },
        {
            "name": "orders",
            "key": {"column": "customer_id", "identifier": "customer_id"},
            "correctable": ["address"],
            "erasure": {"strategy": "delete"},
            "suspension": {"move_to": "orders_suppressed"},
        },
    ],
    "provision_log": {
        "table": "provisions",
        "key": {"column": "email", "identifier": "email"},
        "columns": ["recipient", "purpose", "provided_at"],
        "stopped_column": "stopped",
    },
}


@dataclass
class Database:
    """A seeded database, and connectors built against it (closed at teardown)."""

    url: str
    schema: str | None
    engine: sa.Engine
    meta: sa.MetaData
    connectors: list[SQLConnector] = field(default_factory=list)

    def config(self) -> dict[str, Any]:
        cfg = copy.deepcopy(CONFIG)
        cfg["url"] = self.url
        if self.schema:
            cfg["schema_name"] = self.schema
        return cfg

    def connector(self, config: dict[str, Any] | None = None) -> SQLConnector:
        connector = SQLConnector("crm", config or self.config())
        self.connectors.append(connector)
        return connector

    def rows(self, table: str) -> list[dict[str, Any]]:
        t = self.meta.tables[f"{self.schema}.{table}" if self.schema else table]
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(t).order_by(t.c.id)).mappings()]

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {t: self.rows(t) for t in ("customers", "orders", "orders_suppressed", "provisions")}


def _seed(engine: sa.Engine, meta: sa.MetaData, schema: str | None) -> None:
    meta.create_all(engine)
    with engine.begin() as conn:
        for name, rows in SEED.items():
            conn.execute(meta.tables[f"{schema}.{name}" if schema else name].insert(), rows)


@contextlib.contextmanager
def seeded(kind: str, tmp_path: Path, server: str | None = None) -> Iterator[Database]:
    """A seeded database of ``kind`` (sqlite or postgresql: on the test server, or the
    one at ``server``), removed afterwards."""
    schema: str | None = None
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
        engine = sa.create_engine(url)
    else:
        if server is None and not postgres_reachable():
            pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
        url = server or POSTGRES_ADMIN_URL
        schema = f"dsr_test_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(CreateSchema(schema))
    meta = sa.MetaData(schema=schema)
    define_tables(meta)
    database = Database(url, schema, engine, meta)
    try:
        _seed(engine, meta, schema)
        yield database
    finally:
        for connector in database.connectors:
            connector.close()
        if schema:
            with engine.begin() as conn:
                conn.execute(DropSchema(schema, cascade=True))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The seeded test database, once on SQLite and once on PostgreSQL (if reachable)."""
    with seeded(request.param, tmp_path) as database:
        yield database


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    with seeded("sqlite", tmp_path) as database:
        yield database


# -- the runner on the embedded broker ---------------------------------------

#: Short sessions: the embedded broker holds a new group's first join for half of one.
SESSION_S = 2.0


@pytest.fixture(scope="module")
def bootstrap() -> Iterator[str]:
    """A real (embedded) Kafka broker with the core topics, for one test module."""
    broker = EmbeddedBroker.start()
    try:
        create_topics(broker.bootstrap, core_topics())
        yield broker.bootstrap
    finally:
        broker.stop()


@contextlib.contextmanager
def running(
    bootstrap: str, connectors: dict[str, Connector[Any]], **options: Any
) -> Iterator[ConnectorRunner]:
    """A runner in a background thread, in a fresh group, with quick retries."""
    create_topics(bootstrap, [TopicSpec(tasks_topic(s), 2, "test") for s in connectors])
    options = {
        "group_id": f"runner-{uuid.uuid4().hex[:8]}",
        "max_attempts": 3,
        "session_timeout_s": SESSION_S,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "fetch_max_wait_ms": EMBEDDED_FETCH_MAX_WAIT_MS,  # the embedded broker's
        **options,
    }
    runner = ConnectorRunner(bootstrap, connectors, **options)
    stop = threading.Event()
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            runner.run(stop)
        except BaseException as exc:
            crashed.append(exc)

    thread = threading.Thread(target=run, name="runner", daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        stop.set()
        thread.join(timeout=10)
        runner.close()
    assert not thread.is_alive(), "the runner did not stop"
    assert not crashed, f"the runner crashed: {crashed!r}"


class Outbox:
    """What runners produced: results and dead letters, read from the start in a fresh group."""

    def __init__(self, bootstrap: str) -> None:
        session_ms = int(SESSION_S * 1000)
        self.consumer = KafkaConsumer(
            RESULTS,
            DEAD_LETTER,
            bootstrap_servers=bootstrap,
            group_id=f"outbox-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=session_ms // 6,
        )
        self.results: list[TaskResult] = []
        self.dead: list[dict[str, Any]] = []

    def wait_for(self, found: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Poll until ``found()`` returns something truthy, and return it."""
        deadline = time.monotonic() + timeout
        while not (value := found()):
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing found within {timeout:.0f}s")
            for messages in self.consumer.poll(timeout_ms=200).values():
                for m in messages:
                    if m.topic == RESULTS:
                        self.results.append(TaskResult.model_validate_json(m.value))
                    else:
                        self.dead.append(json.loads(m.value))
        return value

    def result(self, request_id: str) -> TaskResult:
        found: list[TaskResult] = self.wait_for(
            lambda: [r for r in self.results if r.request_id == request_id]
        )
        assert len(found) == 1, found
        return found[0]

    def dead_letters(self, source: str, count: int = 1) -> list[dict[str, Any]]:
        def found() -> list[dict[str, Any]] | None:
            hits = [d for d in self.dead if d["source"] == source]
            return hits if len(hits) >= count else None

        hits: list[dict[str, Any]] = self.wait_for(found)
        return hits


@pytest.fixture
def outbox(bootstrap: str) -> Iterator[Outbox]:
    box = Outbox(bootstrap)
    yield box
    box.consumer.close(autocommit=False)


@pytest.fixture(scope="module")
def producer(bootstrap: str) -> Iterator[KafkaProducer]:
    p = KafkaProducer(bootstrap_servers=bootstrap)
    yield p
    p.close()


class ScriptedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pages: dict[str, str] = {}
    transient_failures: int = 0
    retry_after: float | None = None
    #: or "fatal", "crash", "dry_run" (a plan, not a change), "overclaim" (kept > changed)
    then: str = "answer"


class Scripted(Connector[ScriptedConfig]):
    """An in-memory system (a note per email) that fails as its config says, then answers."""

    name = "scripted"
    Config = ScriptedConfig
    capabilities = frozenset({Kind.DISCLOSURE})

    def __init__(self, system: str, config: dict[str, Any]) -> None:
        super().__init__(system, config)
        self.calls: list[float] = []

    def check(self) -> CheckResult:
        return CheckResult(True, "in memory")

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.config.transient_failures:
            raise RetriableError("the system is busy", retry_after=self.config.retry_after)
        if self.config.then == "fatal":
            raise FatalError("the system refused the request")
        if self.config.then == "crash":
            raise KeyError(identifiers["email"])
        if self.config.then == "dry_run":
            return OperationResult(records=[{"note": "alice", "_source": "pages"}], dry_run=True)
        if self.config.then == "overclaim":
            return OperationResult(records=[{"note": "alice", "_source": "pages"}], kept=1)
        page = self.config.pages.get(identifiers.get("email", ""))
        return OperationResult(records=[{"note": page, "_source": "pages"}] if page else [])
