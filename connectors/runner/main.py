"""The runner's entry point: ``python -m connectors.runner [SYSTEM ...]``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from kafka.errors import KafkaError

import connectors.runner as package
from connectors import pseudonyms
from connectors.dispatch import check as run_check
from connectors.errors import ConfigError
from connectors.registry import build_all
from connectors.runner.loop import ConnectorRunner
from services import datamap, monitoring, settings
from services.crypto import CryptoError, LocalKeyProvider
from services.crypto.sealing import Sealer
from services.delivery.claims import ClaimCheck
from services.faults import crash_point
from services.heartbeat import Heart
from services.logs import configure_logging
from services.processes import exit_after, settle_heap
from streams import topics

log = logging.getLogger("dsr.runner")


def main(argv: Sequence[str] | None = None) -> int:
    """Host the named systems (default: all in scope) until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m connectors.runner",
        description=package.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("systems", nargs="*", help="systems to host; default: all in scope")
    parser.add_argument("--group-id", help="consumer group; default: <DSR_TOPIC_PREFIX>-connectors")
    parser.add_argument("--log-level", help="default: DSR_LOG_LEVEL, else INFO")
    args = parser.parse_args(argv)
    config = settings.load()
    configure_logging(args.log_level or config.log_level)
    if not config.kafka_bootstrap:
        print(
            "DSR_KAFKA_BOOTSTRAP is not set; the connector runner needs a broker", file=sys.stderr
        )
        return 2
    try:
        # ``hash`` erasure's HMAC key (connectors/pseudonyms.py), from the key provider
        pseudonyms.configure(LocalKeyProvider.from_settings(config).erasure_hmac_key())
        data_map = datamap.load(config.datamap_path)
        connectors = build_all(data_map, args.systems or None)
    except (datamap.DataMapError, ConfigError, CryptoError) as exc:
        print(exc, file=sys.stderr)
        return 2
    if not connectors:
        print("no systems to host", file=sys.stderr)
        return 2
    monitoring.serve_process(config, "runner")
    crash_point("runner.starting")
    for name, connector in connectors.items():
        status = run_check(connector)
        level = logging.INFO if status.ok else logging.WARNING
        log.log(level, "check: %s", status.message, extra={"system": name})

    stop = threading.Event()

    def stopping(*_: object) -> None:
        if not stop.is_set():
            exit_after()  # a drain that cannot finish (no broker) must not keep us alive
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stopping)
    try:
        runner = ConnectorRunner(
            config.kafka_bootstrap,
            connectors,
            group_id=args.group_id or topics.CONNECTORS_GROUP,
            max_attempts=config.task_attempts,
            session_timeout_s=config.session_timeout_s,
            on_assigned=lambda: ready(config),
            call_timeouts={n: s.call_timeout_seconds for n, s in data_map.systems.items()},
            concurrency={n: s.concurrency for n, s in data_map.systems.items()},
            sealer=Sealer.from_settings(config),
            claims=ClaimCheck.from_settings(config),
            heart=Heart.for_process(config, "runner", monitoring.record_beat),
            fetch_max_wait_ms=config.fetch_max_wait_ms,
        )
    except KafkaError as exc:
        for connector in connectors.values():
            connector.close()
        print(f"cannot reach Kafka at {config.kafka_bootstrap}: {exc}", file=sys.stderr)
        return 1
    with runner:
        try:
            runner.run(stop)
        except KafkaError as exc:
            # A result that could not be sent (the broker was gone for longer than the
            # producer's delivery timeout) leaves this process unsure what it delivered:
            # stop, uncommitted, and let `dsr up` start a fresh runner.
            log.error("stopping on a Kafka error, to be restarted: %s", exc)
            return 1
    return 0


def ready(config: settings.Settings) -> None:
    """The runner has its partitions: its start is over."""
    settle_heap()
    settings.mark_ready(config)
