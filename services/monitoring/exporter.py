"""The exporter: the figures no single worker or runner owns, served by a process of
their own (``python -m services.monitoring.exporter``; ``dsr up`` runs it as ``exporter``).

- **The legal clock and the backlog**, read from the ledger at each scrape: requests in
  flight, deadlines at risk, litigation risk, tasks waiting and the age of the oldest,
  per system (``LedgerCollector``).
- **Each consumer group's lag per partition**, read from the broker: the partition's
  end offset minus the group's committed offset, as kafka-exporter and Burrow read it.
  Unlike a member's own view it counts what a runner has fetched but not finished, and
  it is one figure a partition however many replicas run: sum it over partitions.

Its health does not depend on the workers', so a worker outage never reads as
"resolved" for an overdue request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.datamap import load as load_datamap
from services.heartbeat import Heart
from services.ledger import Ledger
from services.monitoring.ledger import LedgerCollector
from services.settings import Settings, load, mark_ready
from streams import topics

log = logging.getLogger("dsr.monitoring")

GROUP_LAG = "dsr_consumer_group_lag"
GROUP_LAG_HELP = (
    "Messages between a consumer group's committed offset and the partition's end, read "
    "from the broker (a partition the group never committed counts from its start)."
)
#: A scrape reuses lag read less than this many seconds ago.
LAG_MAX_AGE_S = 5.0


class GroupLagCollector(Collector):
    """``dsr_consumer_group_lag{group, topic, partition}`` from the broker, at scrape time.

    The clients are not thread-safe and scrapes may overlap: one reads at a time, and a
    reading younger than ``LAG_MAX_AGE_S`` is served again."""

    def __init__(self, bootstrap: str, groups: Mapping[str, Sequence[str]]) -> None:
        self.bootstrap, self.groups = bootstrap, groups
        self._lock = threading.Lock()
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None
        self._read_at = 0.0
        self._lag: dict[tuple[str, str, int], int] = {}

    def describe(self) -> list[Metric]:
        return [_lag_family()]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._read_at > LAG_MAX_AGE_S:
                try:
                    self._lag = self.read()
                    self._read_at = time.monotonic()
                except (KafkaError, OSError) as exc:
                    log.warning("consumer group lag not read: %s", type(exc).__name__)
                    self.close()
                    return
            family = _lag_family()
            for (group, topic, partition), lag in sorted(self._lag.items()):
                family.add_metric([group, topic, str(partition)], lag)
        yield family

    def read(self) -> dict[tuple[str, str, int], int]:
        """Each group's lag on each partition of the topics it reads."""
        admin, consumer = self._clients()
        lag: dict[tuple[str, str, int], int] = {}
        for group, names in self.groups.items():
            partitions = [
                TopicPartition(topic, p)
                for topic in names
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if not partitions:
                continue
            ends = consumer.end_offsets(partitions)
            starts = consumer.beginning_offsets(partitions)
            committed: dict[Any, Any] = admin.list_group_offsets({group: partitions}).get(group, {})
            for tp in partitions:
                done = committed.get(tp)
                offset = done.offset if done is not None and done.offset >= 0 else starts[tp]
                lag[(group, tp.topic, tp.partition)] = max(0, ends[tp] - offset)
        return lag

    def _clients(self) -> tuple[KafkaAdminClient, KafkaConsumer]:
        if self._admin is None or self._consumer is None:
            self.close()
            self._admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap, client_id="dsr-exporter"
            )
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                client_id="dsr-exporter",
                group_id=None,
                enable_auto_commit=False,
            )
        return self._admin, self._consumer

    def close(self) -> None:
        for client in (self._admin, self._consumer):
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - a broken client is dropped either way
                    log.debug("exporter client not closed cleanly")
        self._admin = self._consumer = None


def _lag_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(GROUP_LAG, GROUP_LAG_HELP, labels=["group", "topic", "partition"])


def registry(settings: Settings, bootstrap: str) -> CollectorRegistry:
    """The exporter's series: the ledger's gauges and the groups' lag."""
    systems = sorted(load_datamap(settings.datamap_path).systems)
    reg = CollectorRegistry(auto_describe=True)
    reg.register(LedgerCollector(Ledger(settings.database_url), systems))
    reg.register(GroupLagCollector(bootstrap, topics.consumed(systems)))
    return reg


def main() -> int:
    from services.logs import configure_logging

    settings = load()
    configure_logging(settings.log_level)
    bootstrap = settings.kafka_bootstrap or (settings.home / "broker.addr").read_text().strip()
    port = settings.metrics_port or 9400
    start_http_server(port, addr=settings.metrics_addr, registry=registry(settings, bootstrap))
    log.info("exporter on http://%s:%d/metrics", settings.metrics_addr, port)
    mark_ready(settings)
    heart = Heart.for_process(settings, "exporter")
    stop = threading.Event()
    while not stop.wait(heart.interval / 2):
        heart.beat()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
