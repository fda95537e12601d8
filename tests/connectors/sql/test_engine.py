"""How database errors become connector errors: retriable or fatal, naming no values."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from connectors import FatalError, RetriableError
from connectors.sql import SQLConnector
from services.broker import free_port
from streams.records import Change
from tests.connectors.fixtures import ALICE, BOB, CONFIG, Database, seeded
from tests.connectors.sql.fixtures import TARO_JP, Loyalty, loyalty_database
from tests.fixtures.hosts import Host
from tests.fixtures.postgres_server import Server


def test_a_database_refusal_is_fatal_and_names_no_values(db: Database) -> None:
    with pytest.raises(FatalError) as caught:  # the email is unique, and Bob's already
        db.connector().correct(ALICE, [Change(field="email", value="bob@example.com")])
    assert not isinstance(caught.value, RetriableError)
    assert "example.com" not in str(caught.value)
    assert "IntegrityError" in str(caught.value) or "UniqueViolation" in str(caught.value)


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
def test_an_unreachable_database_is_retriable(scheme: str) -> None:
    url = f"{scheme}://app:pa55word@127.0.0.1:{free_port()}/crm"
    connector = SQLConnector("crm", {**CONFIG, "url": url})
    try:
        with pytest.raises(RetriableError) as caught:
            connector.disclose(ALICE)
        assert "OperationalError" in str(caught.value)
        assert "pa55word" not in str(caught.value)
        check = connector.check()
        assert not check.ok and "database error" in check.message
    finally:
        connector.close()


@pytest.mark.postgres
def test_a_vanished_postgresql_host_is_retriable_within_seconds(
    tmp_path: Path, postgres_host: tuple[Server, Host]
) -> None:
    server, host = postgres_host
    with seeded("postgresql", tmp_path, server.url) as db:
        _vanishing_host_fails_the_call_retriably(db.connector(), ALICE, host)


def test_a_vanished_mariadb_host_is_retriable_within_seconds(
    mariadb_host: tuple[str, Host],
) -> None:
    url, host = mariadb_host
    with loyalty_database(url) as db:
        _vanishing_host_fails_the_call_retriably(db.connector(), TARO_JP, host)


def _vanishing_host_fails_the_call_retriably(
    connector: SQLConnector, subject: dict[str, str], host: Host
) -> None:
    """The system's database host vanishes without a word (it died, or the network to
    it was cut): the call fails, retriable, in seconds, where it waited for TCP to give
    up (a quarter of an hour) holding its lane's thread."""
    assert connector.disclose(subject).records
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            connector.disclose(subject)
        except BaseException as exc:  # noqa: BLE001 - kept for the test to read
            outcome.append(exc)

    host.vanish()
    try:
        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        caller.join(timeout=60)
        assert not caller.is_alive(), "the call still waits for the vanished host"
    finally:
        host.appear()
    [error] = outcome
    assert isinstance(error, RetriableError), error
    assert connector.disclose(subject).records  # the host back, the next call goes through


def test_a_locked_sqlite_database_is_retriable(sqlite_db: Database) -> None:
    connector = sqlite_db.connector({**sqlite_db.config(), "lock_timeout_s": 0.1})
    path = sqlite_db.url.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RetriableError, match="database is locked"):
            connector.erase(ALICE, grounds=["withdrawn_consent"])
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert connector.erase(ALICE, grounds=["withdrawn_consent"]).changed == 3
    assert connector.disclose(BOB).records


@contextmanager
def _held(loyalty: Loyalty, lock: str) -> Iterator[None]:
    """Another session holds ``lock`` on Taro's membership: his row, updated in a
    transaction left open (an application's), or the whole table (a migration's)."""
    members = loyalty.meta.tables[
        f"{loyalty.meta.schema}.loyalty_members" if loyalty.meta.schema else "loyalty_members"
    ]
    backend = loyalty.engine.dialect.name
    with loyalty.engine.connect() as conn:
        if backend == "sqlite":  # SQLite locks the whole database for a writer
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.begin()
        if lock == "row" or backend == "sqlite":
            taro = (members.c.country_code == "81") & (members.c.phone == "9012345678")
            conn.execute(members.update().where(taro).values(points=members.c.points))
        elif backend == "postgresql":
            conn.exec_driver_sql(f"LOCK TABLE {members.fullname} IN ACCESS EXCLUSIVE MODE")
        else:
            conn.exec_driver_sql("LOCK TABLES loyalty_members WRITE")
        try:
            yield
        finally:
            conn.rollback()
            if backend == "mysql" and lock == "table":
                conn.exec_driver_sql("UNLOCK TABLES")


@pytest.mark.parametrize("lock", ["row", "table"])
def test_a_lock_held_by_another_session_fails_the_call_retriably(
    loyalty: Loyalty, lock: str
) -> None:
    """A statement that waits on another session's lock gives up after the connector's
    lock wait on every backend, retriable, with nothing changed; once the lock is gone,
    the call goes through. Without it, PostgreSQL and MariaDB wait as long as the lock
    is held, holding the lane's thread past the runner's call time-out."""
    config = loyalty.config() if lock == "row" else {**loyalty.config(), "lock_timeout_s": 1}
    connector = loyalty.connector(config)
    before = loyalty.rows("loyalty_members")
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            connector.erase(TARO_JP, grounds=["withdrawn_consent"])
        except BaseException as exc:  # noqa: BLE001 - kept for the test to read
            outcome.append(exc)

    with _held(loyalty, lock):
        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        caller.join(timeout=60)
        assert not caller.is_alive(), "the call still waits for the lock"
    [error] = outcome
    assert isinstance(error, RetriableError), error
    assert loyalty.rows("loyalty_members") == before
    assert connector.erase(TARO_JP, grounds=["withdrawn_consent"]).changed
    assert [r["name"] for r in loyalty.rows("loyalty_members")] == [
        "Somchai Thai",
        "Taro in Bangkok",
        "Hanako Look-alike",
    ]
