"""The connector runner, through the real embedded broker."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import MemberState
from pydantic import BaseModel, ConfigDict

from connectors import (
    CheckResult,
    Connector,
    OperationResult,
)
from connectors.base import Identifiers
from connectors.runner import REJOIN_STUCK_S, RejoinStuck
from connectors.sql import SQLConnector
from services import heartbeat
from services.broker import EmbeddedBroker, create_topics
from services.crypto import LocalKeyProvider
from services.crypto.sealing import Sealer
from services.delivery.claims import ClaimCheck
from services.delivery.storage import LocalStorage, StorageUnavailable
from services.heartbeat import Heart
from streams.records import DeadLetterEvent, Kind, Task, TaskResult, dump, utcnow
from streams.topics import TopicSpec, core_topics, tasks_topic
from tests.connectors.fixtures import ALICE, SESSION_S, Database, Outbox, Scripted, running
from tests.integration.fixtures import wait_for

pytestmark = pytest.mark.integration


def new_system(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def send_task(
    producer: KafkaProducer,
    system: str,
    kind: Kind = Kind.DISCLOSURE,
    not_after: datetime | None = None,
) -> Task:
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    task = Task(
        request_id=request_id,
        task_id=Task.make_id(request_id, system, kind),
        system=system,
        kind=kind,
        identifiers=ALICE,
        grounds=["g"] if kind is not Kind.DISCLOSURE else [],
        not_after=not_after,
    )
    producer.send(tasks_topic(system), key=request_id.encode(), value=dump(task))
    producer.flush()
    return task


def committed(bootstrap: str, group_id: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in partitions)
    finally:
        consumer.close(autocommit=False)


def test_a_disclosure_on_a_sql_system_is_reported_and_committed(
    bootstrap: str, producer: KafkaProducer, outbox: Outbox, sqlite_db: Database
) -> None:
    system = new_system("crm")
    connector = SQLConnector(system, sqlite_db.config())
    with running(bootstrap, {system: connector}) as runner:
        task = send_task(producer, system)
        result = outbox.result(task.request_id)
    assert result.status == "ok" and result.attempts == 1
    assert result.task_id == task.task_id and result.kind is Kind.DISCLOSURE
    assert [r["_source"] for r in result.records] == ["customers", "orders", "orders"]
    assert [u["customer_id"] for u in result.identities] == ["1"]
    # The offset is committed once the result is out, so a restart does not redo the task.
    assert committed(bootstrap, runner.group_id, tasks_topic(system)) == 1


def test_a_transient_failure_is_retried_honouring_retry_after(
    bootstrap: str, producer: KafkaProducer, outbox: Outbox
) -> None:
    system = new_system("flaky")
    connector = Scripted(
        system, {"pages": {"alice@example.com": "hi"}, "transient_failures": 2, "retry_after": 0.2}
    )
    with running(bootstrap, {system: connector}):
        task = send_task(producer, system)
        result = outbox.result(task.request_id)
    assert result.status == "ok" and result.attempts == 3
    assert result.records == [{"note": "hi", "_source": "pages"}]
    gaps = [b - a for a, b in zip(connector.calls, connector.calls[1:], strict=False)]
    assert len(gaps) == 2 and min(gaps) >= 0.2


def test_exhausted_retries_fail_the_task_and_go_to_the_dead_letter_topic(
    bootstrap: str, producer: KafkaProducer, outbox: Outbox
) -> None:
    system = new_system("down")
    connector = Scripted(system, {"transient_failures": 1000})
    with running(bootstrap, {system: connector}, max_attempts=4):
        task = send_task(producer, system)
        result = outbox.result(task.request_id)
        [letter] = outbox.dead_letters(tasks_topic(system))
    assert result.status == "failed" and result.error_code == "retries_exhausted"
    assert result.retriable and result.attempts == 4 and len(connector.calls) == 4
    assert "busy" in (result.error or "")
    assert letter["attempts"] == 4 and letter["error_code"] == "retries_exhausted"
    assert letter["request_id"] == task.request_id
    # The task is named by its digest; without pipeline keys it is not kept at all.
    assert letter["digest"] == hashlib.sha256(dump(task)).hexdigest()
    assert "original" not in letter and letter["sealed"] is None
    assert DeadLetterEvent.model_validate(letter).task_id == task.task_id  # the published schema


def test_a_task_whose_request_timed_out_is_skipped_unrun_and_dead_lettered(
    bootstrap: str, producer: KafkaProducer, outbox: Outbox
) -> None:
    """Queued behind a slow system until its request was answered without it: running
    it now would do what the response did not say. The next, live task still runs."""
    system = new_system("late")
    connector = Scripted(system, {"pages": {"alice@example.com": "hi"}})
    with running(bootstrap, {system: connector}):
        stale = send_task(producer, system, not_after=utcnow() - timedelta(seconds=1))
        live = send_task(producer, system, not_after=utcnow() + timedelta(minutes=5))
        result = outbox.result(live.request_id)
        [letter] = outbox.dead_letters(tasks_topic(system))
    assert result.status == "ok" and len(connector.calls) == 1
    mine = {stale.request_id, live.request_id}
    assert [r.request_id for r in outbox.results if r.request_id in mine] == [live.request_id]
    assert letter["request_id"] == stale.request_id and letter["task_id"] == stale.task_id
    assert letter["error_code"] == "request_timed_out" and letter["attempts"] == 0


@pytest.mark.parametrize(
    ("then", "code"),
    [
        ("fatal", "fatal"),
        ("crash", "internal_error"),
        ("dry_run", "internal_error"),
        ("overclaim", "internal_error"),
    ],
)
def test_fatal_and_unexpected_errors_are_not_retried(
    bootstrap: str, producer: KafkaProducer, outbox: Outbox, then: str, code: str
) -> None:
    system = new_system(then)
    connector = Scripted(system, {"then": then})
    with running(bootstrap, {system: connector}):
        task = send_task(producer, system)
        unsupported = send_task(producer, system, Kind.ERASURE)
        result = outbox.result(task.request_id)
        refused = outbox.result(unsupported.request_id)
    assert result.status == "failed" and result.error_code == code
    assert result.attempts == 1 and len(connector.calls) == 1 and not result.retriable
    assert "alice" not in (result.error or "")  # an unexpected error's message is not repeated
    assert refused.status == "failed" and refused.error_code == "not_supported"
    said = {
        "dry_run": "a dry run's result",
        "overclaim": "kept (1) and pending_purge (0) are more than changed (0)",
    }
    assert said.get(then, "") in (result.error or "")  # a result that claims too much is failed


def test_a_result_too_large_to_send_is_reported_as_failed(
    bootstrap: str, producer: KafkaProducer, outbox: Outbox
) -> None:
    system = new_system("huge")
    connector = Scripted(system, {"pages": {"alice@example.com": "x" * 2_000_000}})
    with running(bootstrap, {system: connector}):
        task = send_task(producer, system)
        result = outbox.result(task.request_id)
    assert result.status == "failed" and result.error_code == "result_too_large"
    assert result.records == []


def test_a_malformed_task_is_dead_lettered_and_the_runner_carries_on(
    bootstrap: str, producer: KafkaProducer, outbox: Outbox
) -> None:
    system = new_system("notes")
    connector = Scripted(system, {"pages": {"alice@example.com": "hi"}})
    topic = tasks_topic(system)
    with running(bootstrap, {system: connector}):
        producer.send(topic, key=b"k", value=b'{"not json')
        producer.send(topic, key=b"k", value=json.dumps({"request_id": "r1"}).encode())
        producer.flush()
        letters = outbox.dead_letters(topic, count=2)
        task = send_task(producer, system)
        result = outbox.result(task.request_id)
    sent = [b'{"not json', json.dumps({"request_id": "r1"}).encode()]
    assert sorted(d["digest"] for d in letters) == sorted(
        hashlib.sha256(v).hexdigest() for v in sent
    )
    assert all("original" not in d for d in letters)
    assert all(d["attempts"] == 0 and d["error"].startswith("invalid task") for d in letters)
    assert any("system: Field required" in d["error"] for d in letters)
    assert result.status == "ok"


def test_stopping_while_waiting_to_retry_leaves_the_task_for_later(
    bootstrap: str, producer: KafkaProducer
) -> None:
    system = new_system("slow")
    connector = Scripted(system, {"transient_failures": 1000, "retry_after": 60})
    with running(bootstrap, {system: connector}) as runner:
        send_task(producer, system)
        deadline = time.monotonic() + 20
        while not connector.calls:
            assert time.monotonic() < deadline, "the task never reached the connector"
            time.sleep(0.05)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5  # it did not sit out the 60 s retry_after
    assert len(connector.calls) == 1
    assert committed(bootstrap, runner.group_id, tasks_topic(system)) == 0


class SlowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float


class Slow(Connector[SlowConfig]):
    """Answers every disclosure after ``seconds``, one call at a time, and says so."""

    name = "slow"
    Config = SlowConfig
    capabilities = frozenset({Kind.DISCLOSURE})

    def __init__(self, system: str, config: dict[str, Any]) -> None:
        super().__init__(system, config)
        self.busy = 0
        self.most_at_once = 0

    def check(self) -> CheckResult:
        return CheckResult(True, "in memory")

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        self.busy += 1
        self.most_at_once = max(self.most_at_once, self.busy)
        time.sleep(self.config.seconds)
        self.busy -= 1
        return OperationResult()


def test_a_slow_system_does_not_hold_up_the_others_in_the_same_runner(
    bootstrap: str, producer: KafkaProducer, outbox: Outbox
) -> None:
    slow_system, fast_system = new_system("slow"), new_system("fast")
    slow = Slow(slow_system, {"seconds": 0.5})
    fast = Scripted(fast_system, {})
    with running(bootstrap, {slow_system: slow, fast_system: fast}) as runner:
        slow_tasks = [send_task(producer, slow_system) for _ in range(4)]
        deadline = time.monotonic() + 20
        while not slow.busy:
            assert time.monotonic() < deadline, "the slow system never got a task"
            time.sleep(0.01)
        fast_tasks = [send_task(producer, fast_system) for _ in range(4)]
        fast_results = [outbox.result(t.request_id) for t in fast_tasks]
        slow_results = [outbox.result(t.request_id) for t in slow_tasks]
    # the fast system's tasks all finished before the slow one had done half of its own
    assert max(r.finished_at for r in fast_results) < sorted(r.finished_at for r in slow_results)[1]
    # one system's tasks still run one at a time (in order, within a partition)
    assert slow.most_at_once == 1
    for system, n in [(slow_system, 4), (fast_system, 4)]:
        assert committed(bootstrap, runner.group_id, tasks_topic(system)) == n


class Gated(Connector[SlowConfig]):
    """Holds a disclosure for ``held@example.com`` until the test opens the gate, and
    counts how many calls are in at once."""

    name = "gated"
    Config = SlowConfig
    capabilities = frozenset({Kind.DISCLOSURE})

    def __init__(self, system: str, config: dict[str, Any]) -> None:
        super().__init__(system, config)
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.busy = 0
        self.most_at_once = 0

    def check(self) -> CheckResult:
        return CheckResult(True, "in memory")

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        with self.lock:
            self.busy += 1
            self.most_at_once = max(self.most_at_once, self.busy)
        if identifiers.get("email") == "held@example.com":
            self.gate.wait(self.config.seconds)
        with self.lock:
            self.busy -= 1
        return OperationResult()


def send_to_partition(producer: KafkaProducer, system: str, email: str) -> Task:
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    task = Task(
        request_id=request_id,
        task_id=Task.make_id(request_id, system, Kind.DISCLOSURE),
        system=system,
        kind=Kind.DISCLOSURE,
        identifiers={"email": email},
    )
    producer.send(tasks_topic(system), key=request_id.encode(), value=dump(task), partition=0)
    producer.flush()
    return task


def test_a_wide_system_runs_tasks_side_by_side_and_commits_only_past_finished_ones(
    bootstrap: str, producer: KafkaProducer, outbox: Outbox
) -> None:
    system = new_system("wide")
    gated = Gated(system, {"seconds": 30})
    with running(bootstrap, {system: gated}, concurrency={system: 4}) as runner:
        held = send_to_partition(producer, system, "held@example.com")
        wait_for("the held task to start", lambda: gated.busy == 1, timeout=20)
        quick = [send_to_partition(producer, system, "alice@example.com") for _ in range(6)]
        # the tasks behind the held one finish while it is still running...
        for task in quick:
            assert outbox.result(task.request_id).status == "ok"
        # ...but nothing is committed past it: a crash now would run them all again
        assert committed(bootstrap, runner.group_id, tasks_topic(system)) == 0
        gated.gate.set()
        assert outbox.result(held.request_id).status == "ok"
        wait_for(
            "all seven committed",
            lambda: committed(bootstrap, runner.group_id, tasks_topic(system)) == 7,
        )
    assert 2 <= gated.most_at_once <= 4


class Hangs(Connector[SlowConfig]):
    """Never answers a disclosure until the test releases it, as a wedged system would."""

    name = "hangs"
    Config = SlowConfig
    capabilities = frozenset({Kind.DISCLOSURE})

    def __init__(self, system: str, config: dict[str, Any]) -> None:
        super().__init__(system, config)
        self.release = threading.Event()
        self.calls = 0

    def check(self) -> CheckResult:
        return CheckResult(True, "in memory")

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        self.calls += 1
        self.release.wait(self.config.seconds)
        return OperationResult()


def test_a_hung_connector_is_timed_out_retried_then_failed(
    bootstrap: str, producer: KafkaProducer, outbox: Outbox
) -> None:
    hung_system, fast_system = new_system("hung"), new_system("fast")
    hung = Hangs(hung_system, {"seconds": 60})
    fast = Scripted(fast_system, {})
    try:
        with running(
            bootstrap,
            {hung_system: hung, fast_system: fast},
            max_attempts=2,
            call_timeouts={hung_system: 0.5},
        ) as runner:
            hung_task = send_task(producer, hung_system)
            fast_task = send_task(producer, fast_system)
            result = outbox.result(hung_task.request_id)
            [letter] = outbox.dead_letters(tasks_topic(hung_system))
            assert outbox.result(fast_task.request_id).status == "ok"
            # the next task for the hung system is not stuck behind the abandoned calls
            hung.release.set()
            assert outbox.result(send_task(producer, hung_system).request_id).status == "ok"
    finally:
        hung.release.set()
    assert result.status == "failed" and result.error_code == "retries_exhausted"
    assert result.retriable and result.attempts == 2 and hung.calls >= 2
    assert "did not answer within 0.5s" in (result.error or "")
    assert letter["request_id"] == hung_task.request_id and letter["attempts"] == 2
    assert committed(bootstrap, runner.group_id, tasks_topic(hung_system)) == 2


def test_while_the_broker_does_not_answer_the_runner_keeps_beating(tmp_path: Path) -> None:
    """A result is sent to a broker that has frozen: the runner waits for the
    acknowledgement, still beating (``dsr health`` does not call it frozen), and the
    result arrives once the broker answers again."""
    broker = EmbeddedBroker.start()  # its own: frozen here, it would stall the others
    system = new_system("gated")
    gated = Hangs(system, {"seconds": 60})
    try:
        create_topics(broker.bootstrap, core_topics())
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        outbox = Outbox(broker.bootstrap)
        heart = Heart(tmp_path, "runner-0", "runner", interval=0.2)
        with running(broker.bootstrap, {system: gated}, heart=heart):
            task = send_task(producer, system)
            wait_for("the system's call", lambda: gated.calls >= 1)
            os.kill(broker.process.pid, signal.SIGSTOP)
            frozen_at = time.time()
            gated.release.set()  # its result goes to a broker that does not answer

            def beat_since(seconds: float) -> bool:
                beat = heartbeat.read(tmp_path).get("runner-0")
                return beat is not None and beat.at > frozen_at + seconds

            wait_for("a beat well into the freeze", lambda: beat_since(3), timeout=25)
            os.kill(broker.process.pid, signal.SIGCONT)
            assert outbox.result(task.request_id).status == "ok"
        producer.close()
        outbox.consumer.close(autocommit=False)
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
        broker.stop()


def test_while_a_rebalance_waits_for_a_slow_call_the_runner_keeps_beating(
    bootstrap: str,
    producer: KafkaProducer,
    outbox: Outbox,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A second runner joins the group while a system's call is in hand: the first
    finishes that task before its partitions go, and beats while it waits (``dsr up``
    would otherwise take it for frozen and kill it). Its result is the first to arrive
    (when the wait outlasts the rebalance, the runner that took the partition over may
    run the uncommitted task again, under the same ``task_id``)."""
    system = new_system("slow")
    slow = Hangs(system, {"seconds": 60})
    heart = Heart(tmp_path, "runner-0", "runner", interval=0.2)
    try:
        with running(bootstrap, {system: slow}, heart=heart) as runner:
            task = send_task(producer, system)
            wait_for("the system's call", lambda: slow.calls >= 1)
            caplog.set_level(logging.INFO, logger="dsr.runner")
            with running(bootstrap, {system: Scripted(system, {})}, group_id=runner.group_id):
                wait_for(
                    "the first runner to give its partitions up",
                    lambda: any(r.msg == "partitions revoked" for r in caplog.records),
                    timeout=60,
                )
                rebalancing = time.time()

                def beat_since(seconds: float) -> bool:
                    beat = heartbeat.read(tmp_path).get("runner-0")
                    return beat is not None and beat.at > rebalancing + seconds

                wait_for("a beat well into the wait", lambda: beat_since(2), timeout=20)
                assert slow.calls == 1  # the call still in hand all along
                slow.release.set()
                results = outbox.wait_for(
                    lambda: [r for r in outbox.results if r.request_id == task.request_id]
                )
                assert results[0].started_at.timestamp() < rebalancing  # the slow call first
                assert {(r.task_id, r.status) for r in results} == {(task.task_id, "ok")}
    finally:
        slow.release.set()


def test_stopping_while_a_call_hangs_leaves_the_task_for_later(
    bootstrap: str, producer: KafkaProducer
) -> None:
    system = new_system("hung")
    hung = Hangs(system, {"seconds": 60})
    try:
        with running(bootstrap, {system: hung}, call_timeouts={system: 60}) as runner:
            send_task(producer, system)
            wait_for("the call to hang", lambda: hung.calls == 1)
            stopping = time.monotonic()
        assert time.monotonic() - stopping < 5  # it did not wait for the hung call
        assert hung.calls == 1  # not run again as a retry
        assert committed(bootstrap, runner.group_id, tasks_topic(system)) == 0
    finally:
        hung.release.set()


def test_python_m_connectors_runner_serves_until_sigterm(
    bootstrap: str,
    producer: KafkaProducer,
    outbox: Outbox,
    sqlite_db: Database,
    tmp_path: Path,
) -> None:
    system = new_system("crm")
    config = json.dumps(sqlite_db.config())
    (tmp_path / "datamap.yaml").write_text(
        f"systems:\n  {system}:\n    connector: sql\n    identifiers: [email]\n"
        f"    config: {config}\n"
    )
    env = {
        **os.environ,
        "DSR_KAFKA_BOOTSTRAP": bootstrap,
        "DSR_HOME": str(tmp_path),
        "DSR_SESSION_TIMEOUT_S": str(SESSION_S),
        "DSR_COMPONENT": "runner-0",
        "DSR_LOG_LEVEL": "DEBUG",  # a task done is a debug line; none shows a record
    }
    create_topics(bootstrap, [TopicSpec(tasks_topic(system), 2, "test")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "connectors.runner"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        task = send_task(producer, system)
        assert outbox.result(task.request_id).status == "ok"
        assert (tmp_path / "run" / "runner-0.ready").exists()  # Stack.wait_joined sees it
    finally:
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=15)
    assert proc.returncode == 0, log
    assert "runner stopped" in log
    assert f'"request_id": "{task.request_id}"' in log and "alice" not in log


def test_the_runner_needs_a_bootstrap_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DSR_KAFKA_BOOTSTRAP"}
    done = subprocess.run(
        [sys.executable, "-m", "connectors.runner"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "DSR_KAFKA_BOOTSTRAP is not set" in done.stderr


def sealed_task(sealer: Sealer, system: str) -> Task:
    """A disclosure task as a worker sends it: sealed under a new key for its request."""
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    return sealer.seal(
        Task(
            request_id=request_id,
            task_id=Task.make_id(request_id, system, Kind.DISCLOSURE),
            system=system,
            kind=Kind.DISCLOSURE,
            identifiers=ALICE,
        )
    )


def _sealed_disclosure(
    bootstrap: str,
    producer: KafkaProducer,
    outbox: Outbox,
    db: Database,
    keys: Path,
    **options: Any,
) -> tuple[TaskResult, Sealer]:
    """A sealed disclosure task through a runner on ``db``: its result as sent, and the
    worker's sealer that can open it."""
    system = new_system("crm")
    worker_side = Sealer(LocalKeyProvider(keys))
    task = sealed_task(worker_side, system)
    connector = SQLConnector(system, db.config())
    with running(bootstrap, {system: connector}, sealer=Sealer(LocalKeyProvider(keys)), **options):
        producer.send(tasks_topic(system), key=task.request_id.encode(), value=dump(task))
        producer.flush()
        return outbox.result(task.request_id), worker_side


def test_a_sealed_task_is_opened_and_its_result_sealed_under_the_same_key(
    bootstrap: str, producer: KafkaProducer, outbox: Outbox, sqlite_db: Database, tmp_path: Path
) -> None:
    wire, worker_side = _sealed_disclosure(bootstrap, producer, outbox, sqlite_db, tmp_path / "k")
    assert wire.sealed is not None and wire.records == []
    assert ALICE["email"] not in wire.model_dump_json()
    opened = worker_side.open(wire)
    assert [r["_source"] for r in opened.records] == ["customers", "orders", "orders"]


def test_a_sealed_task_reaching_a_runner_without_keys_is_dead_lettered(
    bootstrap: str, producer: KafkaProducer, outbox: Outbox, tmp_path: Path
) -> None:
    system = new_system("notes")
    sealed = sealed_task(Sealer(LocalKeyProvider(tmp_path / "keys")), system)
    request_id = sealed.request_id
    with running(bootstrap, {system: Scripted(system, {"pages": {}})}):
        producer.send(tasks_topic(system), key=request_id.encode(), value=dump(sealed))
        producer.flush()
        [letter] = outbox.dead_letters(tasks_topic(system))
    assert "sealed" in letter["error"] and "DSR_SEAL_EVENTS" in letter["error"]


def test_a_large_sealed_result_is_sent_by_claim_check(
    bootstrap: str, producer: KafkaProducer, outbox: Outbox, sqlite_db: Database, tmp_path: Path
) -> None:
    claims = ClaimCheck(LocalStorage(tmp_path / "packages"), 64)
    wire, worker_side = _sealed_disclosure(
        bootstrap, producer, outbox, sqlite_db, tmp_path / "k", claims=claims
    )
    assert wire.sealed is None and wire.claim is not None and claims.storage.exists(wire.claim)
    opened = worker_side.open(claims.redeem(wire))
    assert [r["_source"] for r in opened.records] == ["customers", "orders", "orders"]


def test_a_membership_that_never_settles_stops_the_runner_for_a_restart(bootstrap: str) -> None:
    """Stable resets the clock; joining or rebalancing for REJOIN_STUCK_S raises, which
    ``main`` turns into an exit for ``dsr up`` to start a fresh runner."""
    joined = threading.Event()
    with running(bootstrap, {"notes": Scripted("notes", {})}, on_assigned=joined.set) as runner:
        assert joined.wait(30), "the runner never joined"
        wait_for(
            "a stable membership",
            lambda: runner._consumer.group_metadata().state == MemberState.STABLE,
            timeout=30,
        )
        now = time.monotonic()
        runner._check_membership(now + REJOIN_STUCK_S * 2)  # stable: nothing to count
        assert runner._unstable_since is None
    # a consumer that has left its group is not stable: the clock runs, then gives up
    runner._check_membership(now)
    runner._check_membership(now + REJOIN_STUCK_S / 2)
    with pytest.raises(RejoinStuck):
        runner._check_membership(now + REJOIN_STUCK_S + 1)


def test_the_runners_kafka_client_checksums_records_in_c() -> None:
    """kafka-python checksums every record batch it sends and fetches (CRC-32C); without
    the ``crc32c`` package it falls back to pure Python, about 170 µs a batch."""
    from kafka.record import util

    assert util.crc32c_c is not None, "the crc32c package is not installed"
    assert util.calc_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


class _AwayAtFirst(LocalStorage):
    """A store that is away (``StorageUnavailable``) for its first ``away`` puts."""

    def __init__(self, root: Path, away: int) -> None:
        super().__init__(root)
        self.away, self.puts = away, 0

    def put(self, key: str, data: bytes, content_type: str) -> str:
        self.puts += 1
        if self.puts <= self.away:
            raise StorageUnavailable(f"put {key} failed after 5 attempts", attempts=5)
        return super().put(key, data, content_type)


def test_a_large_result_waits_for_the_claim_check_store_and_the_runner_goes_on(
    bootstrap: str, producer: KafkaProducer, outbox: Outbox, sqlite_db: Database, tmp_path: Path
) -> None:
    """The store is away when the result is ready: the result waits for it (the task's
    effect done once), where raising would stop the runner and run the task again."""
    store = _AwayAtFirst(tmp_path / "packages", away=2)
    claims = ClaimCheck(store, 64)
    wire, worker_side = _sealed_disclosure(
        bootstrap, producer, outbox, sqlite_db, tmp_path / "k", claims=claims
    )
    assert store.puts == 3
    assert wire.claim is not None and store.exists(wire.claim)
    opened = worker_side.open(claims.redeem(wire))
    assert [r["_source"] for r in opened.records] == ["customers", "orders", "orders"]
