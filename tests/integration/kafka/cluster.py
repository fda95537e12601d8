"""A 3-node Apache Kafka cluster (``infra/kafka-cluster.sh``) for the tests: started once
a session, its nodes killed and started again by the tests, stopped at the end."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient

SCRIPT = Path(__file__).parents[3] / "infra" / "kafka-cluster.sh"
NODES = (1, 2, 3)


def missing_tools() -> str | None:
    """Why the cluster cannot run here, or None."""
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def fetch() -> str | None:
    """Fetch the jars (once); why that failed, or None."""
    done = subprocess.run(
        ["bash", str(SCRIPT), "fetch"], capture_output=True, text=True, timeout=900, check=False
    )
    return f"fetching Apache Kafka failed: {done.stderr[-300:]}" if done.returncode else None


def _free_base() -> int:
    """A first port such that it, the next two and their controllers (+100) are free."""
    for base in range(39192, 60000, 317):
        ports = [base + i for i in range(3)] + [base + 100 + i for i in range(3)]
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports for the Kafka cluster")


@dataclass
class Cluster:
    directory: Path
    env: dict[str, str]
    bootstrap: str = ""

    def run(self, *args: str) -> str:
        done = subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"kafka-cluster.sh {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout.strip()

    def up(self) -> None:
        self.bootstrap = self.run("up").splitlines()[-1]
        self.wait_healthy()

    def down(self) -> None:
        self.run("down", "--purge")

    def pid(self, node: int) -> int | None:
        path = self.directory / f"node{node}" / "pid"
        return int(path.read_text()) if path.exists() else None

    def port(self, node: int) -> int:
        return int(self.bootstrap.split(",")[node - 1].rsplit(":", 1)[1])

    def kill(self, node: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal a node and wait until its process is gone and its port is closed."""
        pid = self.pid(node)
        assert pid is not None and _alive(pid), f"node {node} is not running"
        os.kill(pid, sig)
        deadline = time.monotonic() + 60
        while _alive(pid) or _answers(self.port(node)):
            assert time.monotonic() < deadline, f"node {node} did not stop"
            time.sleep(0.1)

    def revive(self) -> None:
        """Start any node an earlier test left stopped."""
        for node in NODES:
            pid = self.pid(node)
            if pid is None or not _alive(pid):
                self.start(node)

    def start(self, node: int) -> None:
        self.run("start", str(node))

    def admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="test-admin")

    def wait_healthy(self, timeout: float = 180) -> None:
        """Until all three brokers are registered and every partition's replicas are in sync."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._healthy():
                    return
            except Exception:  # noqa: BLE001 - a node may still be starting
                pass
            assert time.monotonic() < deadline, "the cluster did not become healthy"
            time.sleep(0.5)

    def _healthy(self) -> bool:
        admin = self.admin()
        try:
            if len(admin.describe_cluster()["brokers"]) < len(NODES):
                return False
            names = admin.list_topics()
            if not names:
                return True
            return all(
                len(p["isr_nodes"]) == len(p["replica_nodes"])
                for meta in admin.describe_topics(names)
                for p in meta["partitions"]
            )
        finally:
            admin.close()

    def leads(self, node: int) -> int:
        """How many partitions of the pipeline's topics ``node`` leads."""
        admin = self.admin()
        try:
            names = [n for n in admin.list_topics() if not n.startswith("__")]
            return sum(
                p["leader_id"] == node
                for meta in admin.describe_topics(names)
                for p in meta["partitions"]
            )
        finally:
            admin.close()

    def delete_all_topics(self) -> None:
        """Every topic but Kafka's own; their groups' offsets go with them."""
        admin = self.admin()
        try:
            names = [n for n in admin.list_topics() if not n.startswith("__")]
            if names:
                admin.delete_topics(names, timeout_ms=30000)
            deadline = time.monotonic() + 60
            while set(names) & set(admin.list_topics()):
                assert time.monotonic() < deadline, "topics were not deleted"
                time.sleep(0.2)
        finally:
            admin.close()


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_cluster(directory: Path) -> Iterator[Cluster]:
    env = dict(os.environ, DSR_KAFKA_DIR=str(directory), DSR_KAFKA_PORT=str(_free_base()))
    cluster = Cluster(directory, env)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()
