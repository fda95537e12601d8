"""The pipeline on Apache Kafka: a 3-node KRaft cluster, topics with 3 replicas and
``min.insync.replicas`` 2, two workers and two runners under ``dsr up``.

Brokers are killed and restarted under load; every request must be answered exactly once
per revision, and every answer must agree with the systems' own rows, a look-alike
beside each principal left untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka.admin import NewTopic

from services.broker import Durability
from services.client import Submitter, Watcher
from services.ledger import Ledger
from services.settings import Settings
from streams import topics
from tests.fixtures.databases import make_url
from tests.integration.fixtures import (
    DEMO_DATAMAP,
    assert_erased,
    assert_package_holds_only,
    dsr_up_process,
    request_for,
    running,
    seed_lookalikes,
    settings_for,
    wait_for,
    wait_sent,
)
from tests.integration.kafka.cluster import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

FINAL = ("completed", "partially_completed", "failed", "refused")
WORKERS_AND_RUNNERS = ("--workers", "2", "--runners", "2")


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    yield from make_url("postgres", tmp_path)


class Run:
    """One pipeline's home, ledger and submitter on the cluster."""

    def __init__(self, cluster: Cluster, home: Path, people: int, database_url: str) -> None:
        datamap = DEMO_DATAMAP.read_text().replace(
            "request_timeout_seconds: 60", "request_timeout_seconds: 900"
        )
        self.settings = settings_for(home, datamap, database_url=database_url)
        seed_lookalikes(home, people)
        self.home, self.cluster = home, cluster
        self.ledger = Ledger(database_url)
        self.env = {"DSR_KAFKA_BOOTSTRAP": cluster.bootstrap, "DSR_DATABASE_URL": database_url}

    def joined(self, *names: str) -> None:
        for name in names:
            wait_for(f"{name} to join", lambda n=name: running(self.home, n), timeout=300)

    def submit(self, people: range) -> list[str]:
        submitter = Submitter.from_settings(Settings(home=self.home), self.cluster.bootstrap)
        try:
            submitter.submit_all([request_for(i, "k") for i in people])
        finally:
            submitter.close()
        return [f"k-{i}" for i in people]

    def admitted(self, ids: list[str]) -> int:
        return sum(1 for r in ids if self.ledger.request(r))

    def answered(self, ids: list[str]) -> int:
        return sum(1 for r in ids if (row := self.ledger.request(r)) and row.status in FINAL)

    def wait_answered(self, ids: list[str], timeout: float = 900) -> None:
        wait_for(
            f"{len(ids)} requests to be answered",
            lambda: self.answered(ids) == len(ids),
            timeout=timeout,
        )

    def check_exactly_once(self, ids: list[str]) -> None:
        """One completion a revision in the ledger, and one response a revision on the
        topic; nothing missing."""
        wait_sent(self.ledger, ids)
        revisions = {}
        for rid in ids:
            response = self.ledger.response(rid)
            assert response is not None and response.published_at is not None, rid
            actions = [e.action for e in self.ledger.timeline(rid)]
            revisions[rid] = response.body["revision"]
            assert actions.count("completed") == revisions[rid], (rid, actions)
        watcher = Watcher(self.cluster.bootstrap, [topics.RESPONSES])
        try:
            seen = watcher.collect(
                lambda s: (
                    len({(b["request_id"], b["revision"]) for _, b in s}) >= sum(revisions.values())
                ),
                timeout_s=120,
            )
        finally:
            watcher.close()
        sent = Counter((b["request_id"], b["revision"]) for _, b in seen)
        assert [key for key, n in sent.items() if n > 1] == [], "a response was sent twice"
        assert set(sent) == {(rid, r) for rid in ids for r in range(1, revisions[rid] + 1)}

    def check_effects(self, people: range) -> None:
        for i in people:
            response = self.ledger.response(f"k-{i}")
            assert response is not None
            assert response.body["status"] == "completed", (i, response.body["reasons"])
            if i % 2 == 0:
                assert_erased(self.home, i)
            else:
                assert_package_holds_only(self.settings, f"k-{i}", i, people)


def _replicated(cluster: Cluster) -> None:
    """Every pipeline topic has 3 replicas and min.insync.replicas 2, read from the broker."""
    admin = cluster.admin()
    try:
        names = [n for n in admin.list_topics() if n.startswith(f"{topics.PREFIX}.")]
        assert topics.REQUESTS in names and topics.tasks_topic("crm") in names
        for meta in admin.describe_topics(names):
            assert {len(p["replica_nodes"]) for p in meta["partitions"]} == {3}, meta["name"]
        from kafka.admin import ConfigResource, ConfigResourceType

        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        )["topic"]
        assert {n: c["min.insync.replicas"]["value"] for n, c in configs.items()} == dict.fromkeys(
            names, "2"
        )
    finally:
        admin.close()


def test_the_pipeline_runs_on_replicated_topics_with_a_postgresql_ledger(
    cluster: Cluster, tmp_path: Path, postgres_url: str
) -> None:
    people = range(20)
    run = Run(cluster, tmp_path, len(people), postgres_url)
    with dsr_up_process(tmp_path, *WORKERS_AND_RUNNERS, env=run.env) as up:
        run.joined("worker-0", "worker-1", "runner-0", "runner-1")
        _replicated(cluster)
        ids = run.submit(people)
        run.wait_answered(ids)
        run.check_exactly_once(ids)
        # a follower on the cluster (its fetches wait Kafka's 500 ms) gets the response
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSR_")}
        follow = [sys.executable, "-m", "services.cli", "responses", "--follow", "--json"]
        followed = subprocess.run(
            [*follow, "--request", ids[0]],
            env={**env, "DSR_HOME": str(tmp_path), **run.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert followed.returncode == 0, followed.stderr
        assert [json.loads(line)["request_id"] for line in followed.stdout.splitlines()] == ids[:1]
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0
    run.check_effects(people)


@pytest.mark.timeout(1200)
def test_a_broker_killed_mid_burst_loses_and_repeats_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    people = range(500)
    run = Run(cluster, tmp_path, len(people), f"sqlite:///{tmp_path / 'ledger.db'}")
    with dsr_up_process(tmp_path, *WORKERS_AND_RUNNERS, env=run.env) as up:
        run.joined("worker-0", "worker-1", "runner-0", "runner-1")
        first = run.submit(range(0, 250))
        wait_for("the burst to be under way", lambda: run.answered(first) >= 25, timeout=600)
        assert cluster.leads(2), "node 2 leads no partition of the pipeline's topics"
        cluster.kill(2)
        rest = run.submit(range(250, 500))
        wait_for("requests answered without node 2", lambda: run.answered(rest) >= 25, timeout=600)
        cluster.start(2)
        run.wait_answered(first + rest)
        cluster.wait_healthy()
        run.check_exactly_once(first + rest)
        assert up.poll() is None, "dsr up exited"
    run.check_effects(people)


@pytest.mark.timeout(900)
def test_a_rolling_restart_of_every_broker_under_load(cluster: Cluster, tmp_path: Path) -> None:
    people = range(150)
    run = Run(cluster, tmp_path, len(people), f"sqlite:///{tmp_path / 'ledger.db'}")
    ids: list[str] = []
    with dsr_up_process(tmp_path, *WORKERS_AND_RUNNERS, env=run.env) as up:
        run.joined("worker-0", "worker-1", "runner-0", "runner-1")
        for node in (1, 2, 3):
            wave = range(50 * (node - 1), 50 * node)
            ids += run.submit(wave)
            wait_for("the wave to be admitted", lambda w=ids: run.admitted(w) == len(w))
            cluster.kill(node, signal.SIGTERM)  # a controlled shutdown, as a rolling restart does
            cluster.start(node)
            cluster.wait_healthy()
        run.wait_answered(ids)
        run.check_exactly_once(ids)
        assert up.poll() is None, "dsr up exited"
    run.check_effects(people)


def test_reconcile_after_the_topics_are_deleted_and_created_again(
    cluster: Cluster, tmp_path: Path
) -> None:
    """With no runner, requests wait in the task topics; the topics are then deleted, one
    is created again by hand with one replica. ``dsr reconcile`` creates the rest, reports
    the odd one, and re-drives every open request from the ledger: all complete."""
    people = range(10)
    run = Run(cluster, tmp_path, len(people), f"sqlite:///{tmp_path / 'ledger.db'}")
    with dsr_up_process(tmp_path, "--runners", "0", env=run.env) as up:
        run.joined("worker-0")
        before = datetime.now(UTC)
        ids = run.submit(people)
        wait_for(
            "every request to wait on its systems",
            lambda: all((row := run.ledger.request(r)) and row.status == "fanned_out" for r in ids),
        )
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0
    cluster.delete_all_topics()
    admin = cluster.admin()
    try:
        admin.create_topics(
            [NewTopic(topics.RESULTS, 4, 1, topic_configs={"min.insync.replicas": "1"})]
        )
    finally:
        admin.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("DSR_")}
    env.update(DSR_HOME=str(tmp_path), **run.env)
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "reconcile", "--since", before.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "Re-drove 10 open request(s)" in done.stdout, done.stdout
    # none answered yet, and an APPI request owes no notice before its response
    assert "0 response(s) to be sent again by the workers; 0 notice(s)" in done.stdout
    expected = Durability.for_cluster(3)
    assert f"{topics.RESULTS}: replication factor 1, expected {expected.replication}" in (
        " ".join(done.stderr.split())
    ), done.stderr
    with dsr_up_process(tmp_path, env=run.env):
        run.wait_answered(ids)
    run.check_effects(people)
