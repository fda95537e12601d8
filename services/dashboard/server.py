"""A small read-only web server: the dashboard page and the JSON it polls.

| path | what |
|---|---|
| ``/`` | the dashboard page |
| ``/static/<file>`` | its script and style sheet |
| ``/api/overview`` | latency series, systems, requests in flight, deadlines, processes |
| ``/api/requests/<id>`` | one request's stages and timeline (ids and timings only) |
| ``/healthz`` | ``ok`` |

It binds to 127.0.0.1 by default: it has no login of its own, so put it behind
your usual authenticating proxy before exposing it. Pages show request ids,
kinds, systems and timings, never a subject's identifiers or records.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from services import heartbeat
from services.ledger import Ledger
from services.monitoring.overview import overview
from services.serving import Background, bind, send
from services.status import in_hand, status_from

log = logging.getLogger("dsr.dashboard")

STATIC = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
#: Timeline details the drill-down may show: codes, counts, system names, timings.
SAFE_DETAIL = frozenset(
    {
        "attempts",
        "count",
        "duration_ms",
        "error_code",
        "kind",
        "latency_ms",
        "not_applicable",
        "previous_reason",
        "reason_code",
        "reason_codes",
        "refused",
        "regulation",
        "stage",
        "status",
        "systems",
        "was",
        "wave",
        "where",
    }
)
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def request_view(
    ledger: Ledger, request_id: str, home: Path | None = None
) -> dict[str, Any] | None:
    """One request for the drill-down: status, stages and timeline, details filtered;
    ``home``: where the runners' heartbeats tell queued tasks from running ones."""
    report = status_from(ledger, request_id, with_response=False, in_hand=in_hand(home))
    if report is None:
        return None
    for entry in report["timeline"]:
        entry["detail"] = {k: v for k, v in entry["detail"].items() if k in SAFE_DETAIL}
    report["tasks"] = [{k: v for k, v in t.items() if k != "error"} for t in report["tasks"]]
    return report


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = urlsplit(self.path).path
        try:
            if path in ("/", "/index.html"):
                self._static("index.html")
            elif path.startswith("/static/"):
                self._static(path.removeprefix("/static/"))
            elif path == "/api/overview":
                body = overview(self.server.ledger)
                body["processes"] = (
                    heartbeat.supervised(self.server.home) if self.server.home else []
                )
                self._json(body)
            elif path.startswith("/api/requests/"):
                view = request_view(
                    self.server.ledger,
                    unquote(path.removeprefix("/api/requests/")),
                    self.server.home,
                )
                if view is None:
                    self._json({"error": "no such request"}, HTTPStatus.NOT_FOUND)
                else:
                    self._json(view)
            elif path == "/healthz":
                self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
            else:
                self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
        except Exception:
            log.exception("dashboard request failed: %s", path)
            self._json(
                {"error": "internal error; see the dsr up log"}, HTTPStatus.INTERNAL_SERVER_ERROR
            )

    def _static(self, name: str) -> None:
        if name not in STATIC:
            self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
            return
        body = files("services.dashboard").joinpath("static", name).read_bytes()
        self._send(HTTPStatus.OK, body, STATIC[name])

    def _json(self, body: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(body, default=str).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        send(self, status, body, content_type, HEADERS)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("dashboard: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], ledger: Ledger, home: Path | None) -> None:
        self.ledger = ledger
        self.home = home
        super().__init__(addr, _Handler)


class Dashboard(Background):
    """The dashboard, served from a daemon thread: ``Dashboard.start(ledger_url, port)``."""

    @classmethod
    def start(
        cls, database_url: str, port: int = 0, host: str = "127.0.0.1", home: Path | None = None
    ) -> Dashboard:
        """Listen on ``host:port`` (0: any free port; a taken port falls back to any).
        ``home``: the ``DSR_HOME`` whose supervised processes are shown."""
        ledger = Ledger(database_url)
        server = bind(lambda addr: _Server(addr, ledger, home), host, port, "dashboard")
        return cls(server, "dashboard", ledger.close)
