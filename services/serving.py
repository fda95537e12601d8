"""An HTTP server on a daemon thread, as ``dsr up`` serves the dashboard and the console."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

log = logging.getLogger("dsr.serving")

S = TypeVar("S", bound=ThreadingHTTPServer)


def send(
    handler: BaseHTTPRequestHandler,
    status: HTTPStatus,
    body: bytes,
    content_type: str,
    headers: Mapping[str, str],
) -> None:
    """One whole response: status, content type and length, ``headers``, body."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def bind(make: Callable[[tuple[str, int]], S], host: str, port: int, what: str) -> S:
    """``make((host, port))``; a taken port falls back to any free one (0 is any)."""
    try:
        return make((host, port))
    except OSError as exc:
        if not port:
            raise
        log.warning("%s port %d is taken (%s); using a free one", what, port, exc)
        return make((host, 0))


class Background:
    """``server`` served from a daemon thread named ``name``; ``stop`` shuts it down,
    then calls ``on_stop``."""

    def __init__(
        self, server: ThreadingHTTPServer, name: str, on_stop: Callable[[], None] = lambda: None
    ) -> None:
        self._server = server
        self._on_stop = on_stop
        self._thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._on_stop()
