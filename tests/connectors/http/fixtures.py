"""A small in-memory SaaS behind a real HTTP server on loopback, and connector configs for it.

``FakeSaaS`` keeps users with a profile, orders and third-party shares, and
serves them under ``/api/v1`` with all three kinds of pagination:

| route                                   | pagination                                  |
|-----------------------------------------|---------------------------------------------|
| ``GET /users/{email}/records``          | cursor: ``meta.next_cursor`` → ``?cursor=`` |
| ``GET /users/{email}/orders``           | page: ``?page=1&per_page=2`` until empty    |
| ``GET /users/{email}/shares``           | link: ``Link: <...?after=2>; rel="next"``   |

Every route wants ``Authorization: Bearer <TOKEN>``. Set ``mode`` to make
every answer misbehave: ``429``/``429-date``/``503`` (with ``Retry-After``),
``garbage``, ``huge``, ``huge-chunked``, ``shape``, ``deep``, ``drop``,
``slow``, ``redirect`` (to ``redirect_to``), ``redirect-loop``, ``teapot``,
``403``; bodies that are not the JSON asked for: ``malformed``, ``not-utf8``,
``long-number``, ``not-objects``, ``top-level-list``; size and encoding:
``gzip-bomb``, ``gzip-bomb-chunked``, ``bad-gzip``, ``brotli`` (an encoding not
asked for); a stalling server: ``truncated`` (a short body, then the connection
closes), ``truncated-stall`` (a short body, then silence), ``stall`` (headers,
then silence), ``trickle`` (the body one byte at a time), ``header-trickle``
(the status line and headers one byte at a time); or the paging:
``stuck-cursor`` (the same cursor again and again), ``stuck-link`` (a next link
to the same page), ``endless`` (every kind of paging goes on forever),
``foreign-link`` (a next link to another origin). In the modes ``gzip``,
``deflate`` and ``raw-deflate`` every answer is right, but compressed so.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gzip
import json
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from connectors.http import HTTPConnector
from connectors.testing import Harness, Seeded
from streams.records import Change

TOKEN = "saas-token-never-shown-93b7"
RETRY_AFTER = 42
ALICE = {"email": "alice@example.com"}
BOB = {"email": "bob@example.com"}
ODD = {"email": "ann marie/o'neil+x@example.com"}  # a space, a slash, a quote and a plus
NOBODY = {"email": "nobody@example.com"}


def _user(uid: int, email: str, name: str, phone: str, orders: list[str], shares: int) -> Any:
    return {
        "profile": {"id": uid, "email": email, "name": name, "phone": phone, "suspended": False},
        "orders": [
            {"order_id": f"{name[:1]}-{uid}{i:02d}", "item": it} for i, it in enumerate(orders)
        ],
        "shares": [
            {"recipient": f"Partner {k}", "purpose": "delivery", "shared_at": f"2024-0{uid}-1{k}"}
            for k in range(shares)
        ],
        "shares_stopped": False,
    }


SEED = {
    "alice@example.com": _user(
        1, "alice@example.com", "Alice Example", "+81-3-1111", ["book", "lamp", "desk"], 3
    ),
    "bob@example.com": _user(2, "bob@example.com", "Bob Other", "+81-3-2222", ["pen"], 1),
    ODD["email"]: _user(3, ODD["email"], "Ann Marie", "+81-3-3333", ["cup"], 1),
}


@dataclass
class Seen:
    method: str
    raw_path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeSaaS:
    users: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(SEED))
    mode: str | None = None
    page_size: int = 2
    requests: list[Seen] = field(default_factory=list)
    #: Orders kept, linked to nobody, by ``POST /users/{email}/forget``.
    unlinked_orders: list[Any] = field(default_factory=list)
    url: str = ""
    redirect_to: str = "http://example.invalid/steal"
    #: How long a stalling answer stays silent.
    stall_s: float = 3.0

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @contextlib.contextmanager
    def misbehaving(self, mode: str) -> Iterator[None]:
        if mode.startswith("gzip-bomb"):
            gzip_bomb()  # made now: made while answering, it would spend the client's budget
        self.mode = mode
        try:
            yield
        finally:
            self.mode = None

    # -- the API ------------------------------------------------------------

    def route(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> Any:
        """(status, headers, JSON body) for one authorised request."""
        if parts == ["me"]:
            return 200, {}, {"ok": True}
        if len(parts) < 2 or parts[0] != "users" or parts[1] not in self.users:
            return 404, {}, {"error": "not found"}
        user, rest = self.users[parts[1]], parts[2:]
        match method, rest:
            case "GET", ["records"]:
                return self._cursor_page(user, query)
            case "GET", ["orders"]:
                page, size = int(query.get("page", "1")), int(query.get("per_page", "10"))
                if self.mode == "endless":
                    return 200, {}, {"results": [{"item": f"page {page}"}]}
                return 200, {}, {"results": user["orders"][(page - 1) * size : page * size]}
            case "GET", ["shares"]:
                return self._link_page(parts[1], user, query)
            case "PATCH", []:
                fields = body.get("set", {}) if isinstance(body, dict) else {}
                user["profile"].update({k: v for k, v in fields.items() if k in user["profile"]})
                return 200, {}, {"updated": 1}
            case "POST", ["suspend"]:
                before = user["profile"]["suspended"]
                user["profile"]["suspended"] = True
                return 200, {}, {"suspended": 0 if before else 1}
            case "DELETE", []:
                del self.users[parts[1]]
                return 204, {}, None
            case "POST", ["forget"]:  # the profile goes; the orders stay, unlinked
                del self.users[parts[1]]
                self.unlinked_orders += user["orders"]
                kept = len(user["orders"])
                return 200, {}, {"result": {"changed": 1 + kept, "kept": kept}}
            case "POST", ["anonymise"]:  # every record stays, under a pseudonym, uncounted
                user["profile"].update(name="***", email=None)
                self.users[f"anon-{len(self.users)}"] = self.users.pop(parts[1])
                return 200, {}, {"ok": True}
            case "POST", ["shares", "stop"]:
                user["shares_stopped"] = True
                return 200, {}, {"stopped": len(user["shares"])}
        return 405, {}, {"error": "method not allowed"}

    def _records(self, user: Any) -> list[dict[str, Any]]:
        return [dict(user["profile"]), *(dict(o) for o in user["orders"])]

    def _cursor_page(self, user: Any, query: dict[str, str]) -> Any:
        records = self._records(user)
        start = int(query.get("cursor", "0"))
        end = start + self.page_size
        nxt = str(end) if end < len(records) else None
        if self.mode == "stuck-cursor":
            nxt = "2"
        elif self.mode == "endless":
            nxt = str(end)
        return 200, {}, {"data": {"items": records[start:end]}, "meta": {"next_cursor": nxt}}

    def _link_page(self, email: str, user: Any, query: dict[str, str]) -> Any:
        start = int(query.get("after", "0"))
        end = start + self.page_size
        headers = {}
        if end < len(user["shares"]):
            headers["Link"] = f'<?after={end}>; rel="next", <?after=0>; rel="first"'
        if self.mode == "foreign-link":
            headers["Link"] = '<http://example.invalid/api/v1/steal>; rel="next"'
        elif self.mode == "stuck-link":
            headers["Link"] = f'<?after={start}>; rel="next"'
        elif self.mode == "endless":
            headers["Link"] = f'<?after={end}>; rel="next"'
        return 200, headers, user["shares"][start:end]


def _raw_deflate(data: bytes) -> bytes:
    z = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return z.compress(data) + z.flush()


ENCODINGS = {"gzip": gzip.compress, "deflate": zlib.compress, "raw-deflate": _raw_deflate}


@functools.cache
def gzip_bomb(megabytes: int = 50) -> bytes:
    """A JSON array of ``megabytes`` MB of spaces, gzipped to about 1/1000 of that."""
    z = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [z.compress(b"[")]
    parts += [z.compress(b" " * 1_000_000) for _ in range(megabytes)]
    return b"".join([*parts, z.compress(b"]"), z.flush()])


def _handler(saas: FakeSaaS) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            saas.requests.append(Seen(self.command, self.path, dict(self.headers), body))
            if self._misbehave():
                return
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._send(401, {}, {"error": "unauthorised"})
                return
            split = urlsplit(self.path)
            prefix = "/api/v1/"
            if not split.path.startswith(prefix):
                self._send(404, {}, {"error": "not found"})
                return
            parts = [unquote(p) for p in split.path[len(prefix) :].split("/")]
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            self._send(*saas.route(self.command, parts, query, body))

        def _misbehave(self) -> bool:
            mode = saas.mode
            if mode is None or mode in ("stuck-cursor", "stuck-link", "endless", "foreign-link"):
                return False  # the routes themselves misbehave
            if mode in ENCODINGS:
                return False  # _send compresses
            if mode in ("429", "429-date", "503"):
                when = str(RETRY_AFTER)
                if mode == "429-date":
                    when = formatdate(time.time() + RETRY_AFTER, usegmt=True)
                self._send(int(mode[:3]), {"Retry-After": when}, {"error": "busy"})
            elif mode == "garbage":
                self._raw(200, b"<html>Welcome! " + TOKEN.encode() + b"</html>", "text/html")
            elif mode == "huge":
                self._raw(200, b'{"data": {"items": [' + b'{"x": 1},' * 300_000 + b"]}}")
            elif mode == "huge-chunked":
                self._chunked(b'{"data": {"items": [' + b'{"x": 1},' * 300_000 + b"]}}")
            elif mode == "shape":
                self._send(200, {}, {"data": {"items": "alice@example.com"}})
            elif mode == "deep":
                self._raw(200, b"[" * 100_000 + b"]" * 100_000)
            elif mode == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
            elif mode == "slow":
                time.sleep(1.5)
                self._send(200, {}, {"data": {"items": []}, "meta": {}})
            elif mode == "redirect":
                self._send(302, {"Location": saas.redirect_to}, None)
            elif mode == "redirect-loop":
                self._send(302, {"Location": self.path}, None)
            elif mode == "teapot":
                self._send(418, {}, {"error": f"no coffee for {TOKEN}"})
            elif mode == "403":
                self._send(403, {}, {"error": f"forbidden: {TOKEN}"})
            else:
                self._misbehave_body(mode)
            return True

        def _misbehave_body(self, mode: str) -> None:
            secret = f'"{TOKEN} alice@example.com"'.encode()
            if mode == "malformed":
                self._raw(200, b'{"data": {"items": [{"name": ' + secret)
            elif mode == "not-utf8":
                self._raw(200, b'{"data": {"items": [{"name": "\xff\xfe ' + secret[1:] + b"}]}}")
            elif mode == "long-number":
                self._raw(200, b'{"data": {"items": [{"n": 1' + b"0" * 5000 + b"}]}}")
            elif mode == "not-objects":
                self._send(200, {}, {"data": {"items": ["alice@example.com", 1]}})
            elif mode == "top-level-list":
                self._send(200, {}, [{"email": "alice@example.com"}])
            elif mode in ("gzip-bomb", "gzip-bomb-chunked"):
                if mode == "gzip-bomb":
                    self._raw(200, gzip_bomb(), headers={"Content-Encoding": "gzip"})
                else:
                    self._chunked(gzip_bomb(), {"Content-Encoding": "gzip"})
            elif mode == "brotli":
                self._raw(200, b"\x8b\x02\x80{}\x03", headers={"Content-Encoding": "br"})
            elif mode == "bad-gzip":
                self._raw(200, b'{"data": ' + secret + b"}", headers={"Content-Encoding": "gzip"})
            elif mode in ("truncated", "truncated-stall", "stall", "trickle"):
                self._stall(mode)
            elif mode == "header-trickle":
                self._trickle_head()

        def _trickle_head(self) -> None:
            """The status line and headers a byte every 50 ms: each byte well within a
            read timeout, all of them (about 7 s) far beyond any budget in the tests."""
            body = b'{"data": {"items": []}, "meta": {}}'
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nX-Padding: {'.' * 60}\r\n\r\n"
            ).encode()
            self.close_connection = True
            for byte in head:
                self.wfile.write(bytes([byte]))
                time.sleep(0.05)
            self.wfile.write(body)

        def _stall(self, mode: str) -> None:
            body = b'{"data": {"items": [' + b'{"x": 1},' * 100 + b"{}]}}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) + 1000 * (mode != "trickle")))
            self.end_headers()
            self.wfile.flush()
            if mode == "trickle":
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.05)
                return
            if mode != "stall":
                self.wfile.write(body)
                self.wfile.flush()
            if mode == "truncated":
                self.close_connection = True
                self.connection.shutdown(2)
            else:
                time.sleep(saas.stall_s)
                self.close_connection = True

        def _send(self, status: int, headers: dict[str, str], body: Any) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            if saas.mode in ENCODINGS and data:
                data = ENCODINGS[saas.mode](data)
                headers = {**headers, "Content-Encoding": saas.mode.removeprefix("raw-")}
            self._raw(status, data, "application/json", headers)

        def _raw(
            self, status: int, data: bytes, ctype: str = "application/json", headers: Any = None
        ) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _chunked(self, data: bytes, headers: Any = None) -> None:
            self.send_response(200)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(data), 65536):
                chunk = data[start : start + 65536]
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

        def handle(self) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                super().handle()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def config(base: str) -> dict[str, Any]:
    """A config using every operation, and cursor pagination for disclosure."""
    users = "/users/{email}"
    return {
        "base_url": f"{base}/api/v1",
        "headers": {"Authorization": f"Bearer {TOKEN}"},
        "timeout_s": 5,
        "endpoints": {
            "check": {"path": "/me"},
            "disclose": {
                "path": f"{users}/records",
                "records_path": "data.items",
                "pagination": {"type": "cursor", "cursor_path": "meta.next_cursor"},
                "discovers": {"customer_id": "id"},
            },
            "correct": {"method": "PATCH", "path": users, "body": {"set": "{changes}"}},
            "suspend": {
                "method": "POST",
                "path": f"{users}/suspend",
                "body": {"grounds": "{grounds}", "who": "{email}"},
            },
            "erase": {"method": "DELETE", "path": users},
            "third_party_records": {"path": f"{users}/shares", "pagination": {"type": "link"}},
            "stop_third_party_provision": {"method": "POST", "path": f"{users}/shares/stop"},
        },
    }


class HTTPHarness(Harness):
    """The fake SaaS with Alice and Bob, for the conformance kit."""

    connector_class = HTTPConnector
    system = "saas"

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        super().__init__(request, tmp_path)
        self.saas = FakeSaaS()
        self.saas.start()
        request.addfinalizer(self.saas.stop)

    def config(self) -> dict[str, Any]:
        return config(self.saas.url)

    def seed(self) -> Seeded:
        return Seeded(
            subject=dict(ALICE),
            other=dict(BOB),
            correction=Change(field="name", value="Alice Corrected"),
            unknown=dict(NOBODY),
        )

    def raw_view(self) -> list[dict[str, Any]]:
        """The fake SaaS's users, keyed by email, as it stores them."""
        return [dict(self.saas.users)]

    def invalid_configs(self) -> list[dict[str, Any]]:
        good = self.config()
        eps = good["endpoints"]
        return [
            {**good, "base_url": "ftp://example.com"},
            {**good, "base_url": "api.example.com"},
            {**good, "headers": {"Authorization": f"Bearer {TOKEN}\r\nX-Evil: 1"}},
            {**good, "headers": {"Authorization": f"Bearer {TOKEN}\u00e9"}},
            {**good, "base_url": "http://[::1/api"},
            {**good, "endpoints": {"check": eps["check"]}},
            {**good, "endpoints": {**eps, "erase": {"method": "DELETE", "path": "/users"}}},
            {**good, "endpoints": {**eps, "erase": {"method": "PURGE", "path": "/u/{email}"}}},
            {**good, "endpoints": {**eps, "disclose": {"path": "users/{email}"}}},
            {**good, "endpoints": {**eps, "disclose": {"path": "/u/{Email}"}}},
            {**good, "endpoints": {**eps, "disclose": {"path": "/u/{email}/{changes}"}}},
            {
                **good,
                "endpoints": {
                    **eps,
                    "disclose": {"path": "/u/{email}", "pagination": {"type": "offset"}},
                },
            },
            {**good, "timeout_s": 0},
            {**good, "unexpected": True},
        ]

    def secrets(self) -> list[str]:
        return [TOKEN]

    def break_transiently(self) -> contextlib.AbstractContextManager[None]:
        return self.saas.misbehaving("503")


# -- a loyalty API that searches members by phone alone ----------------------

MEMBERS: list[dict[str, Any]] = [
    {"id": 1, "country_code": "81", "phone": "9012345678", "name": "Taro Yamada"},
    {"id": 2, "country_code": "66", "phone": "9012345678", "name": "Somchai Thai"},
    {"id": 3, "country_code": "81", "phone": "8011112222", "name": "Hanako Other"},
]


class MembersAPI:
    """``GET /members?phone=`` answers every member with that phone, whatever the
    country; ``DELETE /members/{country_code}/{phone}`` deletes one member."""

    def __init__(self) -> None:
        self.members = copy.deepcopy(MEMBERS)
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                phone = parse_qs(url.query).get("phone", [""])[0]
                found = [m for m in api.members if m["phone"] == phone]
                self._send({"members": found} if url.path == "/members" else None)

            def do_DELETE(self) -> None:
                parts = [unquote(p) for p in urlsplit(self.path).path.split("/")[1:]]
                if len(parts) != 3 or parts[0] != "members":
                    return self._send(None)
                keep = [m for m in api.members if [m["country_code"], m["phone"]] != parts[1:]]
                deleted, api.members = len(api.members) - len(keep), keep
                self._send({"deleted": deleted})

            def _send(self, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(404 if body is None else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def names(self) -> list[str]:
        return [m["name"] for m in self.members]
