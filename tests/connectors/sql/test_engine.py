"""How database errors become connector errors: retriable or fatal, naming no values."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from connectors import FatalError, RetriableError
from connectors.sql import SQLConnector
from services.broker import free_port
from streams.records import Change
from tests.connectors.fixtures import ALICE, BOB, CONFIG, Database, seeded
from tests.connectors.sql.fixtures import TARO_JP, loyalty_database
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
    connector = sqlite_db.connector({**sqlite_db.config(), "busy_timeout_s": 0.1})
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
