"""Requests to the system's API, and what its answers mean to the runner.

| the API answers                                   | we raise / return                       |
|---------------------------------------------------|-----------------------------------------|
| 2xx with a JSON body (or none)                    | a ``Reply``                             |
| 404, with ``not_found_is_empty``                  | ``None``: the subject is unknown        |
| 408, 429, 5xx                                     | ``RetriableError(retry_after=...)``     |
| more than ``timeout_s`` for the whole request      | ``RetriableError``                      |
| a broken connection                               | ``RetriableError``                      |
| any other status (3xx, 4xx)                       | ``FatalError``                          |
| a body that is not JSON or over the size cap      | ``FatalError``                          |
| a body in an encoding other than gzip or deflate  | ``FatalError``                          |

Redirects are not followed, so headers never travel to another host. Messages
name the method and the path *template* (``GET /users/{email}``), never a
filled-in URL, an identifier, a header value or the response body. httpx logs
each request's URL at INFO; ``RedactURLs`` cuts those URLs down to their origin.

``timeout_s`` is the budget for the whole request: connecting, sending, the
status line and headers, and the body. httpx's own timeouts are per socket
operation, so a server that trickles its answer a byte at a time never trips
them. Each API's connection pools therefore use ``_BudgetedBackend``: every
connect, read and write on a socket waits at most what is left of the
request's budget (set by ``send`` in the context variable ``_DEADLINE``), and
fails with a timeout once it is spent. Not covered: resolving the host name,
which ``getaddrinfo`` does without a timeout.

The size cap counts the body after decompression, and the body is inflated at most
a cap's worth at a time, so a small gzip bomb costs no more memory than the cap.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import zlib
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from http import HTTPStatus
from ssl import SSLContext
from typing import Any

import httpcore
import httpx

from connectors.errors import FatalError, RetriableError, parse_retry_after
from connectors.http.config import HTTPConfig


@dataclass(frozen=True)
class Reply:
    body: Any
    url: httpx.URL
    next_link: str | None


class API:
    """One HTTP client for one system, with its auth headers and limits."""

    def __init__(self, system: str, cfg: HTTPConfig) -> None:
        self.system = system
        self.cfg = cfg
        self.origin = httpx.URL(cfg.base_url).copy_with(path="/", query=None)
        headers = httpx.Headers({"Accept-Encoding": "gzip, deflate"})  # what _read inflates
        headers.update({k: v.get_secret_value() for k, v in cfg.headers.items()})
        self._client = httpx.Client(
            base_url=cfg.base_url,
            headers=headers,
            timeout=cfg.timeout_s,
            follow_redirects=False,
        )
        _budget_every_pool(self._client)

    def send(
        self,
        what: str,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        not_found_is_empty: bool | None = None,
    ) -> Reply | None:
        """Send one request; ``what`` names it in messages (``GET /users/{email}``)."""
        empty_404 = (
            self.cfg.not_found_is_empty if not_found_is_empty is None else not_found_is_empty
        )
        prefix = f"system {self.system!r}: {what}"
        kwargs: dict[str, Any] = {"params": params} if params else {}
        if json_body is not None:
            kwargs["json"] = json_body
        budget = self.cfg.timeout_s
        token = _DEADLINE.set(time.monotonic() + budget)
        try:
            with self._client.stream(method, url, **kwargs) as response:
                status = response.status_code
                if status == 404 and empty_404:
                    return None
                if status in (408, 429) or status >= 500:
                    wait = self.retry_after(response.headers.get("Retry-After"))
                    raise RetriableError(f"{prefix} answered {_status(status)}", retry_after=wait)
                if not 200 <= status < 300:
                    hint = " (check the auth headers)" if status in (401, 403) else ""
                    raise FatalError(f"{prefix} answered {_status(status)}{hint}")
                data = self._read(prefix, response)
                return Reply(_parse(prefix, data), response.url, _next_link(response))
        except httpx.TimeoutException as exc:
            # Every socket wait is cut to what is left of the budget, so any
            # timeout means the budget is spent.
            raise RetriableError(
                f"{prefix} timed out: took longer than {budget:g} s ({type(exc).__name__})"
            ) from None
        except httpx.TransportError as exc:
            raise RetriableError(f"{prefix} failed to connect ({type(exc).__name__})") from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            raise FatalError(f"{prefix} failed ({type(exc).__name__})") from None
        finally:
            _DEADLINE.reset(token)

    def same_origin(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == (
            self.origin.scheme,
            self.origin.host,
            self.origin.port,
        )

    def retry_after(self, value: str | None) -> float | None:
        """``Retry-After`` in seconds, capped by the config; None if unusable."""
        return parse_retry_after(value, self.cfg.max_retry_after_s)

    def close(self) -> None:
        self._client.close()

    def _read(self, prefix: str, response: httpx.Response) -> bytes:
        """The body, refusing more than ``max_response_bytes`` (after decompression).

        A body sent too slowly runs out of the request's budget (``_BudgetedStream``)."""
        cap = self.cfg.max_response_bytes
        too_big = f"{prefix} sent a response larger than {cap} bytes"
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise FatalError(too_big)
        inflate = _Inflater(prefix, response.headers.get("Content-Encoding", ""))
        chunks, size = [], 0
        for raw in itertools.chain(response.iter_raw(), [None]):  # None: the end
            chunk = inflate(raw, cap - size + 1)
            size += len(chunk)
            if size > cap:
                raise FatalError(too_big)
            chunks.append(chunk)
        return b"".join(chunks)


#: When the request being sent in this thread must be done (``time.monotonic()``).
_DEADLINE: ContextVar[float | None] = ContextVar("http_request_deadline", default=None)
#: Writes are cut into pieces this big, so the budget is checked between them.
_WRITE_PIECE = 64 * 1024


def _left(timeout: float | None, spent: type[httpcore.TimeoutException]) -> float | None:
    """``timeout`` cut to what is left of the request's budget; ``spent`` once none is."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:  # never 0 to the socket: that would make it non-blocking
        raise spent("the request's time budget is spent")
    return left if timeout is None else min(timeout, left)


class _BudgetedStream(httpcore.NetworkStream):
    """A connection whose every read and write waits at most the rest of the budget."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), _WRITE_PIECE):
            piece = buffer[start : start + _WRITE_PIECE]
            self._stream.write(piece, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _BudgetedStream(self._stream.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _BudgetedBackend(httpcore.NetworkBackend):
    """Connects within the rest of the budget, to ``_BudgetedStream`` connections."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _BudgetedStream(
            self._backend.connect_tcp(host, port, left, local_address, socket_options)
        )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _BudgetedStream(self._backend.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _budget_every_pool(client: httpx.Client) -> None:
    """Put ``_BudgetedBackend`` under each of the client's connection pools, the
    direct one and any for proxies from the environment. httpx offers no public
    way to choose the network backend, so this reaches into ``HTTPTransport._pool``
    and fails loudly if a new httpx or httpcore lays them out differently."""
    for transport in [client._transport, *client._mounts.values()]:
        if transport is None:
            continue
        pool: Any = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if not isinstance(backend, httpcore.NetworkBackend):
            raise RuntimeError(f"cannot bound the time of requests through {transport!r}")
        if not isinstance(backend, _BudgetedBackend):
            pool._network_backend = _BudgetedBackend(backend)


class _Inflater:
    """Decodes the body as it arrives: from the next raw bytes (None at the end) to at
    most ``limit`` decoded bytes, where ``limit`` bytes mean the body is too big."""

    def __init__(self, prefix: str, encoding: str) -> None:
        self.prefix = prefix
        self.encoding = encoding.strip().lower()
        if self.encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise FatalError(f"{prefix} sent a body in an unsupported Content-Encoding")
        wbits = zlib.MAX_WBITS if self.encoding == "deflate" else zlib.MAX_WBITS | 16
        self._z = zlib.decompressobj(wbits)
        self._started = False

    def __call__(self, data: bytes | None, limit: int) -> bytes:
        if self.encoding in ("", "identity"):
            return data or b""
        try:
            if data is None:
                return self._z.flush()
            try:
                out = self._z.decompress(data, limit)
            except zlib.error:
                if self.encoding != "deflate" or self._started:
                    raise
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # deflate without its header
                out = self._z.decompress(data, limit)
        except zlib.error:
            raise FatalError(
                f"{self.prefix} sent a body that does not decode as {self.encoding}"
            ) from None
        self._started = True
        return out


def _parse(prefix: str, data: bytes) -> Any:
    if not data.strip():
        return None
    try:
        return json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise FatalError(f"{prefix} sent a response that is not JSON") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _next_link(response: httpx.Response) -> str | None:
    try:
        url = response.links.get("next", {}).get("url")
    except (ValueError, KeyError, IndexError):
        return None
    return url or None


def _status(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


class RedactURLs(logging.Filter):
    """Cut the URLs in httpx's request log lines down to their origin: the path and
    query hold identifiers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("HTTP Request:"):
            args = record.args
            if isinstance(args, tuple) and len(args) > 1 and isinstance(args[1], httpx.URL):
                url = args[1]
                record.args = (args[0], f"{url.scheme}://{url.netloc.decode()}/…", *args[2:])
        return True


def redact_httpx_logs() -> None:
    """Install ``RedactURLs`` on httpx's logger, once."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, RedactURLs) for f in logger.filters):
        logger.addFilter(RedactURLs())
