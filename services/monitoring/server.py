"""``/metrics``, one port per process (``DSR_METRICS_PORT``; 0 is off), on loopback unless
``DSR_METRICS_ADDR`` says otherwise (``0.0.0.0`` in a container, for Prometheus)."""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from services.datamap import DataMapError
from services.datamap import load as load_datamap
from services.monitoring.metrics import REGISTRY, zero
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


def serve_process(settings: Settings, process: str) -> tuple[WSGIServer, threading.Thread] | None:
    """A worker's or a runner's ``/metrics``: its own series, every counter whose labels
    are known from the data map created at zero. (The ledger's gauges are the
    exporter's: ``services/monitoring/exporter.py``.)"""
    if not settings.metrics_port:
        return None
    try:
        systems = sorted(load_datamap(settings.datamap_path).systems)
    except (DataMapError, OSError):
        systems = []  # the process reports the data map's error itself
    zero(systems, process)
    return serve(settings.metrics_port, settings.metrics_addr)
