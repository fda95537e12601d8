"""Monitoring: every Prometheus metric in one module, and the hooks that move them.

``metrics`` defines the series and the one-line hooks the wiring calls; ``ledger`` the
gauges read from the ledger at each scrape; ``server``
serves ``/metrics`` on a loopback port; ``exporter`` is the process that serves the
ledger's gauges and each group's lag from the broker.
"""

from services.monitoring.ledger import LedgerCollector
from services.monitoring.metrics import (
    REGISTRY,
    observe_connector_call,
    observe_stage,
    record_beat,
    record_completion,
    record_connector_call,
    record_parked,
    record_retry,
    record_sent,
    record_stale,
    record_task_result,
    record_wait,
)
from services.monitoring.server import serve, serve_process

__all__ = [
    "REGISTRY",
    "LedgerCollector",
    "observe_connector_call",
    "observe_stage",
    "record_beat",
    "record_completion",
    "record_connector_call",
    "record_parked",
    "record_retry",
    "record_sent",
    "record_stale",
    "record_task_result",
    "record_wait",
    "serve",
    "serve_process",
]
