"""``/metrics``, one port per process (``DSR_METRICS_PORT``; 0 is off), on loopback unless
``DSR_METRICS_ADDR`` says otherwise (``0.0.0.0`` in a container, for Prometheus)."""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from services.datamap import DataMapError
from services.datamap import load as load_datamap
from services.ledger import Ledger
from services.monitoring.metrics import REGISTRY, watch_ledger
from services.settings import Settings

log = logging.getLogger("dsr.monitoring")

ADDR = "127.0.0.1"


def serve(port: int, addr: str = ADDR) -> tuple[WSGIServer, threading.Thread] | None:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread; None if off or taken."""
    if not port:
        return None
    try:
        server = start_http_server(port, addr=addr, registry=REGISTRY)
    except OSError as exc:
        log.error("no /metrics: cannot listen on %s:%d: %s", addr, port, exc)
        return None
    log.info("metrics on http://%s:%d/metrics", addr, port)
    return server


def serve_worker(settings: Settings) -> tuple[WSGIServer, threading.Thread] | None:
    """A stream worker's ``/metrics``: the process's own series and the ledger's gauges."""
    if not settings.metrics_port:
        return None
    try:
        systems = sorted(load_datamap(settings.datamap_path).systems)
    except (DataMapError, OSError):
        systems = []  # the worker reports the data map's error itself
    watch_ledger(Ledger(settings.database_url), systems)
    return serve(settings.metrics_port, settings.metrics_addr)
