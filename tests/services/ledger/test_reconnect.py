"""A connection the database dropped (a restart) costs one retry of the operation, not
a failure, and no ping precedes each transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, OperationalError

from services.ledger import Action, Ledger
from services.ledger.reconnect import retried
from tests.fixtures.databases import POSTGRES_ADMIN_URL, libpq_options, make_url
from tests.fixtures.ledger_rows import DEADLINE
from tests.fixtures.ledger_rows import event as request_event


def _dropped(invalidated: bool) -> DBAPIError:
    return OperationalError(
        "SELECT 1",
        {},
        Exception("server closed the connection"),
        connection_invalidated=invalidated,
    )


def test_an_operation_whose_connection_was_dropped_runs_once_more() -> None:
    calls = []

    def op(value: int) -> int:
        calls.append(value)
        if len(calls) == 1:
            raise _dropped(invalidated=True)
        return value * 2

    assert retried(op)(21) == 42
    assert calls == [21, 21]


@pytest.mark.parametrize("invalidated", [True, False])
def test_other_errors_and_a_second_drop_are_raised(invalidated: bool) -> None:
    calls = []

    def op() -> None:
        calls.append(1)
        raise _dropped(invalidated)

    with pytest.raises(OperationalError):
        retried(op)()
    assert len(calls) == (2 if invalidated else 1)


def test_static_methods_stay_static() -> None:
    assert Ledger.refused_parts.__name__ == "refused_parts"
    assert Ledger.refused_parts(type("Row", (), {"refused_parts": None})()) == []  # type: ignore[arg-type]


@pytest.fixture
def postgres_ledger(tmp_path: Path) -> Iterator[Ledger]:
    for url in make_url("postgres", tmp_path):
        led = Ledger(url)
        led.migrate()
        yield led
        led.close()


@pytest.mark.postgres
def test_the_ledger_survives_the_server_dropping_its_connections(
    postgres_ledger: Ledger,
) -> None:
    ledger = postgres_ledger
    ledger.admit(request_event(), "proceed", None, DEADLINE)
    with ledger.engine.connect() as conn:  # the pool's one connection, back in the pool after
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    drops: list[bool] = []

    @event.listens_for(ledger.engine, "handle_error")
    def _seen(context: ExceptionContext) -> None:
        drops.append(context.is_disconnect)

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
            alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
            while conn.execute(alive, {"pid": pid}).scalar():  # until the backend has gone
                pass
    finally:
        admin.dispose()

    row = ledger.request("r-1")  # on the dropped connection first, then on a new one
    assert row is not None and row.status == "accepted"
    assert drops == [True]
    ledger.audit("r-1", "test", Action.NOTIFIED, notice_id="n-1")
    assert ledger.notified("r-1", "n-1")


@pytest.mark.postgres
def test_a_postgres_ledger_gives_up_on_a_silent_host_unless_its_url_says_otherwise(
    tmp_path: Path,
) -> None:
    for url in make_url("postgres", tmp_path):
        for given, expected in ((url, "3"), (f"{url}&connect_timeout=10", "10")):
            ledger = Ledger(given)
            try:
                options = libpq_options(ledger.engine)
            finally:
                ledger.close()
            assert options["connect_timeout"] == expected
            assert (options["keepalives_idle"], options["tcp_user_timeout"]) == ("3", "5000")


@pytest.mark.postgres
def test_a_postgres_ledger_waits_for_a_lock_as_long_as_sqlite_unless_its_url_says_otherwise(
    tmp_path: Path,
) -> None:
    own = "options=-clock_timeout%3D10s%20"  # before the URL's search_path
    for url in make_url("postgres", tmp_path):
        for given, expected in ((url, "2s"), (url.replace("options=", own), "10s")):
            # the URL's own options are kept
            assert _lock_wait_and_path(given) == (expected, url.rpartition("%3D")[2])


@pytest.mark.postgres
def test_a_postgres_ledger_keeps_the_options_given_in_pgoptions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq reads ``PGOPTIONS`` only where the connection names no ``options``: the
    ledger's lock wait, given as ``options``, must not drop a search path set there."""
    for url in make_url("postgres", tmp_path):
        bare, _, own = url.partition("?options=")
        monkeypatch.setenv("PGOPTIONS", own.replace("%3D", "="))
        assert _lock_wait_and_path(bare) == ("2s", own.rpartition("%3D")[2])


def _lock_wait_and_path(url: str) -> tuple[str, str]:
    """A PostgreSQL ledger's connection's ``lock_timeout`` and ``search_path``."""
    ledger = Ledger(url)
    try:
        with ledger.engine.connect() as conn:
            shown = conn.exec_driver_sql("SHOW lock_timeout").scalar()
            path = conn.exec_driver_sql("SHOW search_path").scalar()
    finally:
        ledger.close()
    return str(shown), str(path)
