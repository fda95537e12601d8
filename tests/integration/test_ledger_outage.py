"""The ledger's PostgreSQL server dies under load and comes back: the worker waits for it,
and every request completes once, as if nothing had happened. Before, a batch that met the
outage was dead-lettered after a second of retries: requests never admitted, results never
recorded, and requests answered "failed" for systems that had answered.

The outage outlasts the request timeout: the results the systems sent in time wait unread
until the ledger is back, and no system is timed out for them (before, the sweeper timed
the requests out by the clock first, and answered that systems gave no result in time)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from services import heartbeat
from services.client import Submitter, Watcher, read_all
from services.demo.scenario import HANAKO, event
from services.ledger import Ledger
from services.settings import Settings
from streams import topics
from tests.fixtures.databases import sqlite_locked
from tests.fixtures.hosts import Host
from tests.fixtures.ledger_reads import count_by_status
from tests.fixtures.postgres_server import Server
from tests.integration.fixtures import (
    assert_erased,
    assert_package_holds_only,
    dsr_up_process,
    joined_stack,
    request_for,
    running,
    seed_lookalikes,
    settings_for,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

#: Submitted before the outage, and while it lasts.
BEFORE, DURING = range(16), range(16, 22)
PEOPLE = range(22)
#: The request timeout: shorter than the outage.
TIMEOUT_S = 8


def test_a_ledger_outage_fails_and_loses_nothing(tmp_path: Path, postgres_server: Server) -> None:
    settings = settings_for(tmp_path, database_url=postgres_server.url)
    datamap = tmp_path / "datamap.yaml"
    text = datamap.read_text()
    assert "request_timeout_seconds: 60\n" in text
    datamap.write_text(
        text.replace("request_timeout_seconds: 60", f"request_timeout_seconds: {TIMEOUT_S}")
    )
    seed_lookalikes(tmp_path, len(PEOPLE))
    log = tmp_path / "dsr-up.log"
    with dsr_up_process(tmp_path, env={"DSR_DATABASE_URL": postgres_server.url}):
        worker = wait_for("the worker to join", lambda: running(tmp_path, "worker-0"))
        wait_for("the runner to join", lambda: running(tmp_path, "runner-0"))
        bootstrap = (tmp_path / "broker.addr").read_text().strip()
        watcher = Watcher(bootstrap, [topics.RESPONSES])
        submitter = Submitter.from_settings(Settings(home=tmp_path), bootstrap)
        submitter.submit_all(request_for(i, "lo") for i in BEFORE)
        # the server dies as soon as the first response is out: the rest are mid-flight
        seen = watcher.collect(lambda s: len(s) >= 1, timeout_s=90)
        postgres_server.crash()
        # every request fanned out before the crash is past its timeout when it is back
        deadlines_passed = time.monotonic() + TIMEOUT_S + 1
        submitter.submit_all(request_for(i, "lo") for i in DURING)
        wait_for(
            "intake to wait for the ledger",
            lambda: any(
                "the batch waits" in line and '"stage": "intake"' in line
                for line in log.read_text(errors="replace").splitlines()
            ),
        )
        wait_for("the requests' timeouts to pass", lambda: time.monotonic() > deadlines_passed)
        postgres_server.start()
        ids = {f"lo-{i}" for i in PEOPLE}
        seen += watcher.collect(
            lambda s: ids <= {b["request_id"] for _, b in seen + s}, timeout_s=180
        )
        submitter.close()
        watcher.close()
        assert running(tmp_path, "worker-0") == worker, "the worker was restarted"
        letters = read_all(bootstrap, [topics.DEAD_LETTER])
    assert letters == [], [json.loads(r.value)["error"] for r in letters]
    sent = Counter(b["request_id"] for _, b in seen)
    assert set(sent) == ids and set(sent.values()) == {1}, sent
    assert {b["status"] for _, b in seen} == {"completed"}
    ledger = Ledger(settings.database_url)
    try:
        assert count_by_status(ledger) == {"completed": len(ids)}
        assert ledger.dead_letters() == []
        for i in PEOPLE:
            actions = [e.action for e in ledger.timeline(f"lo-{i}")]
            assert actions.count("completed") == 1, (i, actions)
    finally:
        ledger.close()
    for i in PEOPLE:
        if i % 2 == 0:
            assert_erased(tmp_path, i)
        else:
            assert_package_holds_only(settings, f"lo-{i}", i, PEOPLE)


def test_a_locked_ledger_file_holds_the_worker_without_freezing_it(tmp_path: Path) -> None:
    """Another process holds the SQLite ledger's write lock (a backup, an operator's
    shell) for longer than a statement waits for it: the worker's batch waits, its loop
    keeps beating (``dsr health`` passes), and the request is answered once the lock goes."""
    settings = settings_for(tmp_path)
    _waited_out_without_freezing(settings, lambda: sqlite_locked(settings.database_url))


def test_a_vanished_ledger_host_holds_the_worker_without_freezing_it(
    tmp_path: Path, postgres_host: tuple[Server, Host]
) -> None:
    """The ledger's PostgreSQL host vanishes without a word (it died, or the network to
    it was cut): what the worker sends it goes unanswered, where a server that stops
    resets its connections. The worker's batch waits and its loop keeps beating (``dsr
    health`` passes); when the host is back the request is answered, by the same worker."""
    server, host = postgres_host

    @contextmanager
    def vanished() -> Iterator[None]:
        host.vanish()
        try:
            yield
        finally:
            host.appear()

    _waited_out_without_freezing(settings_for(tmp_path, database_url=server.url), vanished)


@pytest.mark.postgres
def test_a_locked_ledger_table_holds_the_worker_without_freezing_it(
    tmp_path: Path, postgres_server: Server
) -> None:
    """An operator's session on the PostgreSQL ledger holds a table lock (a migration by
    hand, a forgotten transaction): the worker's statements wait for it as long as a
    statement on SQLite waits for its file's lock, then the batch waits without holding
    the loop, which keeps beating; the request is answered once the lock goes."""

    @contextmanager
    def locked() -> Iterator[None]:
        engine = sa.create_engine(postgres_server.url)
        with engine.connect() as conn:
            conn.execute(sa.text("LOCK TABLE requests IN ACCESS EXCLUSIVE MODE"))
            yield
            conn.rollback()
        engine.dispose()

    _waited_out_without_freezing(settings_for(tmp_path, database_url=postgres_server.url), locked)


def _waited_out_without_freezing(
    settings: Settings, outage: Callable[[], AbstractContextManager[None]]
) -> None:
    """A request answered; then one submitted during ``outage``, which the worker waits
    out: it waits for the ledger twice and never misses enough beats to look frozen. The
    request is answered after the outage, by the same worker."""
    worker_log = settings.home / "logs" / "worker-0.log"
    with joined_stack(settings, log_dir=worker_log.parent) as stack:
        worker = stack.pid("worker-0")
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
        submitter = stack.submitter()

        def submit(request_id: str) -> None:
            submitter.submit_all([json.dumps(event(request_id, "disclosure", HANAKO)).encode()])

        def answered(request_id: str) -> list[str]:
            seen = watcher.collect(lambda s: any(b["request_id"] == request_id for _, b in s), 90)
            return [b["status"] for _, b in seen if b["request_id"] == request_id]

        # the worker's connections to the ledger are open, and it beats
        submit("before")
        assert answered("before") == ["completed"]
        wait_for("its first beat", lambda: "worker-0" in heartbeat.read(settings.home))
        ages: list[float] = []

        def waited_twice() -> bool:
            beat = heartbeat.read(settings.home).get("worker-0")
            ages.append(beat.age() if beat else float("inf"))
            return worker_log.read_text().count("the batch waits") >= 2

        with outage():
            submit("during")
            wait_for("the worker to wait for the ledger twice", waited_twice, timeout=90)
        assert max(ages) < heartbeat.FROZEN_AFTER_S  # never looked frozen
        assert answered("during") == ["completed"]
        assert stack.check_alive() == [] and stack.pid("worker-0") == worker
        submitter.close()
        watcher.close()
