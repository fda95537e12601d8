"""Chaos through `dsr up`: the broker, the worker and the runner are killed with SIGKILL,
repeatedly, while erasures and disclosures of principals with look-alikes are in flight;
`dsr up` alone brings each back.

Only requests the ledger admitted are counted (an in-memory broker loses what intake has
not yet read: the broker is killed once the ledger has the burst in flight). Each must
complete exactly once (a late answer may add a revision, never a second answer to the
same revision), its response must agree with every system's own rows, and a disclosure's
package must hold the principal's records only.

``CHAOS_ROUNDS`` repeats the worker and runner kills (``make chaos`` soaks with more).
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from services.client import Submitter, Watcher
from services.ledger import Ledger
from services.settings import Settings
from streams import topics
from tests.integration.fixtures import (
    DEMO_DATAMAP,
    assert_erased,
    assert_package_holds_only,
    assert_untouched,
    dsr_up_process,
    processes,
    request_for,
    running,
    seed_lookalikes,
    settings_for,
    wait_for,
    wait_sent,
)

pytestmark = pytest.mark.integration

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "1"))
#: Requests submitted before each kill.
WAVE = 6
BROKER_KILLS = 3
VICTIMS = ("worker-0", "runner-0") * 2 * ROUNDS
PEOPLE = WAVE * (BROKER_KILLS + len(VICTIMS))
FINAL = ("completed", "partially_completed", "failed", "refused")


class Chaos:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.ledger = Ledger(f"sqlite:///{home / 'ledger.db'}")
        self.next = 0

    def wave(self) -> list[str]:
        """Submit the next ``WAVE`` requests, acknowledged; wait until the ledger has them."""
        people = range(self.next, self.next + WAVE)
        self.next += WAVE
        bootstrap = (self.home / "broker.addr").read_text().strip()
        submitter = Submitter.from_settings(Settings(home=self.home), bootstrap)
        try:
            submitter.submit_all([request_for(i, "chaos") for i in people])
        finally:
            submitter.close()
        ids = [f"chaos-{i}" for i in people]
        wait_for("admission", lambda: all(self.ledger.request(r) for r in ids))
        return ids

    def completed(self, ids: list[str]) -> int:
        return sum(1 for r in ids if (row := self.ledger.request(r)) and row.status in FINAL)

    def kill(self, name: str) -> None:
        pid = wait_for(f"{name} to run", lambda: running(self.home, name), timeout=180)
        os.kill(pid, signal.SIGKILL)
        wait_for(f"{name} to come back", lambda: running(self.home, name, pid), timeout=180)


# A kill and its wave take about 10 s here: the test's limit grows with the kills, so
# that a soak of many rounds is not cut short by the suite's limit for one test.
@pytest.mark.timeout(120 + 45 * len(VICTIMS))
def test_kill_everything_repeatedly_and_every_admitted_request_comes_true(
    tmp_path: Path,
) -> None:
    home = tmp_path
    datamap = DEMO_DATAMAP.read_text().replace(
        "request_timeout_seconds: 60", "request_timeout_seconds: 900"
    )
    assert "request_timeout_seconds: 900" in datamap
    settings = settings_for(home, datamap)
    seed_lookalikes(home, PEOPLE)
    with dsr_up_process(home) as up:
        for name in ("broker", "worker-0", "runner-0"):
            wait_for(f"{name} to run", lambda n=name: running(home, n), timeout=120)
        chaos = Chaos(home)
        admitted: list[str] = []

        # The broker, three times in a row, each time with a wave in flight; after each
        # kill, the stack recovers by itself: a request of that wave completes.
        for _ in range(BROKER_KILLS):
            ids = chaos.wave()
            admitted += ids
            chaos.kill("broker")
            wait_for("a completion after the broker's restart", lambda i=ids: chaos.completed(i))
        # ... and nothing crashed: the supervisor started the worker and the runner afresh
        # with the empty broker (services/supervisor.py, _stop_clients)
        restarts = {n: p["restarts"] for n, p in processes(home).items()}
        assert restarts == {"broker": BROKER_KILLS, "worker-0": 0, "runner-0": 0, "exporter": 0}
        # Then the worker and the runner, in turn, each with a wave in flight.
        after_broker: list[str] = []
        for victim in VICTIMS:
            ids = chaos.wave()
            admitted += ids
            after_broker += ids
            chaos.kill(victim)
        wait_for(
            "every admitted request to complete",
            lambda: chaos.completed(admitted) == len(admitted),
            timeout=300,
        )
        assert up.poll() is None, "dsr up exited"
        restarts = {n: p["restarts"] for n, p in processes(home).items()}
        assert restarts["broker"] == BROKER_KILLS
        assert restarts == {
            "broker": BROKER_KILLS,
            "worker-0": 2 * ROUNDS,
            "runner-0": 2 * ROUNDS,
            "exporter": 0,
        }

        # Every admitted request completed exactly once a revision; none is lost.
        wait_sent(chaos.ledger, admitted)
        revisions = {}
        for rid in admitted:
            response = chaos.ledger.response(rid)
            assert response is not None, rid
            assert response.published_at is not None, rid
            actions = [e.action for e in chaos.ledger.timeline(rid)]
            revision = response.body["revision"]
            assert actions.count("completed") == revision, (rid, actions)
            assert revision == 1 + actions.count("late_result") + actions.count("redriven")
            revisions[rid] = revision
        # The responses topic, read back (it holds what was sent since the broker's last
        # restart): one message per request and revision, and the ledger's last revision.
        watcher = Watcher((home / "broker.addr").read_text().strip(), [topics.RESPONSES])
        try:
            seen = watcher.collect(
                lambda s: {b["request_id"] for _, b in s} >= set(after_broker), timeout_s=60
            )
        finally:
            watcher.consumer.close()
        sent = Counter((b["request_id"], b["revision"]) for _, b in seen)
        assert [key for key, n in sent.items() if n > 1] == []
        for rid in after_broker:
            assert (rid, revisions[rid]) in sent, rid
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0

    # No response contradicts the systems' data.
    for i in range(PEOPLE):
        rid = f"chaos-{i}"
        response = chaos.ledger.response(rid)
        assert response is not None
        assert response.body["status"] == "completed", (rid, response.body["reasons"])
        with told(chaos.ledger, rid):
            if i % 2 == 0:
                assert_erased(home, i)
                continue
            assert_untouched(home, i, "p")
            assert_untouched(home, i, "l")
            assert_package_holds_only(settings, rid, i, range(PEOPLE))
    chaos.ledger.close()


@contextmanager
def told(ledger: Ledger, rid: str) -> Iterator[None]:
    """A failed check names what the ledger says of the request: each task, and its trail."""
    try:
        yield
    except AssertionError as exc:
        tasks = [(t.task_id, t.status, t.error) for t in ledger.tasks(rid)]
        trail = [(e.actor, e.action, e.detail) for e in ledger.timeline(rid)]
        raise AssertionError(f"{exc}\ntasks: {tasks}\ntrail: {trail}") from exc
