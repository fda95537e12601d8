"""Kill a process in the middle of requests; every request still completes exactly once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from services.client import Watcher, read_all
from services.demo.scenario import HANAKO, JIRO, TARO, event
from services.faults import POINTS, crash_marker
from services.ledger import Ledger
from streams import topics
from tests.fixtures.ledger_reads import count_by_status
from tests.integration.fixtures import joined_stack, settings_for, wait_supervised

pytestmark = pytest.mark.integration

N = 30


def _requests(n: int = N, start: int = 0) -> list[bytes]:
    subjects = [TARO, HANAKO, JIRO]
    return [
        json.dumps(event(f"crash-{i}", "disclosure", subjects[i % 3])).encode()
        for i in range(start, start + n)
    ]


@pytest.mark.parametrize("victim", ["worker-0", "runner-0"])
def test_sigkill_mid_run_loses_nothing_and_completes_once(tmp_path: Path, victim: str) -> None:
    settings = settings_for(tmp_path)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
        submitter = stack.submitter()
        submitter.submit_all(_requests())
        # Kill as soon as the first response is out: the rest are mid-flight.
        seen = watcher.collect(lambda s: len(s) >= 1, timeout_s=60)
        stack.kill(victim)
        stack.spawn(victim)
        stack.wait_joined([victim])
        seen += watcher.collect(
            lambda s: len({b["request_id"] for _, b in seen + s}) >= N, timeout_s=120
        )
        submitter.close()
        watcher.close()
        everything = read_all(stack.bootstrap, [topics.RESPONSES])  # to the end offsets
    ids = Counter(json.loads(r.value)["request_id"] for r in everything)
    assert set(ids) == {f"crash-{i}" for i in range(N)}, "a request was lost"
    ledger = Ledger(settings.database_url)
    for i in range(N):
        completions = [e for e in ledger.timeline(f"crash-{i}") if e.action == "completed"]
        assert len(completions) == 1, f"crash-{i} completed {len(completions)} times"
    assert count_by_status(ledger) == {"completed": N}
    ledger.close()
    duplicates = sum(n - 1 for n in ids.values())
    print(f"{victim}: {N} requests, 0 lost, {duplicates} duplicate response events")
    assert duplicates == 0, ids  # the outbox looks on the topic before sending again


def test_a_crash_at_every_point_loses_nothing_and_completes_each_request_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL at each crash point (services/faults.py), one after another, restarting
    whichever process died: between a ledger write and its send, between a connector's
    effect and its result, between a response and its record of being sent."""
    monkeypatch.setenv("DSR_CRASH_AT", ",".join(POINTS))
    settings = settings_for(tmp_path)
    erasures = [
        json.dumps(event(f"crash-e{i}", "erasure", subject, grounds=["no_longer_needed"])).encode()
        for i, subject in enumerate([HANAKO, JIRO])
    ]
    ids = {f"crash-{i}" for i in range(N)} | {"crash-e0", "crash-e1"}
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        submitter = stack.submitter()
        submitter.submit_all(_requests() + erasures)
        ledger = Ledger(settings.database_url)

        def settled() -> bool:  # every request completed, every response sent and recorded
            completed = count_by_status(ledger) == {"completed": len(ids)}
            return completed and not ledger.unpublished_responses()

        supervisor = wait_supervised(
            "every request completed and its response sent", stack, settled, 240
        )
        submitter.close()
        everything = read_all(stack.bootstrap, [topics.RESPONSES])  # to the end offsets
    assert {p for p in POINTS if crash_marker(tmp_path, p).exists()} == set(POINTS)
    restarts = {name: h.total for name, h in supervisor.health.items() if h.total}
    assert sum(restarts.values()) == len(POINTS), restarts  # each crash was a real SIGKILL
    sent = Counter(json.loads(r.value)["request_id"] for r in everything)
    assert set(sent) == ids, "a request was lost"
    # killed between a response's send and its record of being sent, the worker finds
    # it on the topic when it restarts (streams/outbox.py) and does not send it again
    assert set(sent.values()) == {1}, sent
    for rid in ids:
        completions = [e for e in ledger.timeline(rid) if e.action == "completed"]
        assert len(completions) == 1, f"{rid} completed {len(completions)} times"
        # sent once: killed after admitting its batch, the worker reads it again and
        # knows its messages, so none is audited as a duplicate
        intake = [e.action for e in ledger.timeline(rid) if e.actor == "intake"]
        assert intake == ["received"], (rid, intake)
    ledger.close()


#: In flight when a second worker joins, and sent once it has joined.
MANY, LATER = 400, 100


def test_a_worker_joining_mid_run_shares_the_partitions_and_nothing_completes_twice(
    tmp_path: Path,
) -> None:
    """A second worker joins while requests are in flight: the group rebalances, and the
    requests sent after it has joined are shared between the two."""
    settings = settings_for(tmp_path)
    everyone = {f"crash-{i}" for i in range(MANY + LATER)}
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
        submitter = stack.submitter()
        submitter.submit_all(_requests(MANY))
        seen = watcher.collect(lambda s: len(s) >= 1, timeout_s=60)
        stack.add("worker-1", list(stack.components["worker-0"].argv))
        stack.spawn("worker-1")
        stack.wait_joined(["worker-1"])
        submitter.submit_all(_requests(LATER, start=MANY))
        seen += watcher.collect(
            lambda s: everyone <= {b["request_id"] for _, b in seen + s}, timeout_s=180
        )
        submitter.close()
        watcher.close()
        assert not stack.check_alive()
    ids = Counter(b["request_id"] for _, b in seen)
    assert set(ids) == everyone, "a request was lost"
    ledger = Ledger(settings.database_url)
    completions = Counter(
        e.request_id
        for request_id in everyone
        for e in ledger.timeline(request_id)
        if e.action == "completed"
    )
    assert set(completions.values()) == {1}, "a request completed twice"
    assert count_by_status(ledger) == {"completed": MANY + LATER}
    ledger.close()
    # the new worker did part of the work: it completed requests after the rebalance
    joined_late = (tmp_path / "logs" / "worker-1.log").read_text()
    assert joined_late.count('"msg": "request completed"') >= 1
