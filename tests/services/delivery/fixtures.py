"""Builders for response events and task results, and a flaky S3 fake."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.responses import TaskOutcome, summarise
from streams.records import (
    Kind,
    Reason,
    Regulation,
    ResponseEvent,
    ResponseStatus,
    TaskResult,
    TaskStatus,
)

RECEIVED = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)
COMPLETED = datetime(2025, 4, 3, 15, 30, tzinfo=UTC)
DEADLINE = datetime(2025, 4, 15, 9, 0, tzinfo=UTC)


def make_response(
    kind: Kind = Kind.DISCLOSURE,
    *,
    request_id: str = "req-1",
    status: ResponseStatus | None = None,
    systems: dict[str, TaskStatus] | None = None,
    reasons: list[Reason] | None = None,
    results: list[TaskResult] | None = None,
    requested: list[str] | None = None,
    **extra: Any,
) -> ResponseEvent:
    """A response listing ``systems``. Their outcomes, the correction's per-field outcomes
    and (unless ``status`` is given) the status are derived from ``results`` as the
    aggregator derives them, so the response and its results never disagree."""
    by_system = {r.system: r for r in results or []}
    outcomes = [
        TaskOutcome(s, TaskStatus(st), None, by_system.get(s)) for s, st in (systems or {}).items()
    ]
    summary = summarise(kind, outcomes, requested or [])
    fields: dict[str, Any] = {
        "request_id": request_id,
        "kind": kind,
        "regulation": Regulation.APPI,
        "status": status or (summary.status if outcomes else ResponseStatus.COMPLETED),
        "systems": summary.systems,
        "corrections": summary.corrections,
        "reasons": reasons or [],
        "received_at": RECEIVED,
        "completed_at": COMPLETED,
        "deadline": DEADLINE,
        "latency_ms": 196_200_000,
        "processing_ms": 1_200,
        **extra,
    }
    return ResponseEvent(**{k: v for k, v in fields.items() if k in ResponseEvent.model_fields})


def make_result(
    system: str,
    kind: Kind = Kind.DISCLOSURE,
    *,
    request_id: str = "req-1",
    records: list[dict[str, Any]] | None = None,
    details: dict[str, Any] | None = None,
    status: str = "ok",
    wave: int = 0,
) -> TaskResult:
    return TaskResult(
        request_id=request_id,
        task_id=f"{request_id}:{system}:{kind}:{wave}",
        system=system,
        kind=kind,
        status=status,  # type: ignore[arg-type]
        records=records or [],
        details=details or {},
        started_at=RECEIVED,
        finished_at=COMPLETED,
    )


class _FlakyHandler(BaseHTTPRequestHandler):
    server: _FlakyServer
    protocol_version = "HTTP/1.1"  # answers "Expect: 100-continue" at once

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.requests += 1
        if self.server.requests <= self.server.failures:
            body = b"<Error><Code>SlowDown</Code><Message>Slow down</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
        else:
            body = self.server.payload if self.command == "GET" else b""
            self.send_response(200)
            self.send_header("ETag", '"0"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _FlakyServer(ThreadingHTTPServer):
    requests = 0
    failures = 0
    payload = b"payload"


@contextmanager
def flaky_s3(failures: int) -> Iterator[_FlakyServer]:
    """A loopback HTTP server that answers 503 SlowDown ``failures`` times, then 200."""
    server = _FlakyServer(("127.0.0.1", 0), _FlakyHandler)
    server.failures = failures
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def endpoint(server: _FlakyServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"
