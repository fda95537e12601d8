"""A seeded bucket on the moto server, reached through a proxy that can be made to fail.

``FlakyProxy`` forwards every request to the moto server unchanged. Inside
``answering(status, code)`` it answers every request itself with that S3
error instead; ``broken()`` is ``503 SlowDown`` with a ``Retry-After`` header,
as S3 answers when it sheds load. Connectors under test point their
``endpoint_url`` at the proxy, so each failure is a real HTTP exchange.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from connectors.s3 import S3Connector
from connectors.testing import Harness, Seeded
from tests.fixtures.moto_server import s3_client

SECRET = "s3-secret-never-shown-4f1c"
RETRY_AFTER = 7

ALICE = {"customer_id": "1", "email": "alice@example.com"}
BOB = {"customer_id": "12", "email": "bob@example.com"}
NOBODY = {"customer_id": "999", "email": "nobody@example.com"}

BOB_JSON = "application/json; charset=utf-8"
ALICE_PROVISIONS = (
    '{"recipient": "Acme Logistics", "purpose": "delivery", "provided_at": "2024-04-01"}\n\n'
    '{"recipient": "Ad Partner", "purpose": "marketing", "provided_at": "2024-05-01"}\n'
)
BOB_PROVISIONS = (
    '{"recipient": "Acme Logistics", "purpose": "delivery", "provided_at": "2024-04-02"}\n'
)

ERROR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>Refused by the test proxy.</Message></Error>"
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class FlakyProxy:
    """A forwarding HTTP proxy on loopback with a switch that makes it answer 503."""

    def __init__(self, upstream: str) -> None:
        self.failing: tuple[int, str, list[tuple[str, str]]] | None = None
        self.requests = 0
        target = urlsplit(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def _forward(self) -> None:
                proxy.requests += 1
                body = self._body()
                if proxy.failing:
                    status, code, headers = proxy.failing
                    error = ERROR_XML.format(code=code).encode()
                    self._answer(status, headers, error, head=self.command == "HEAD")
                    return
                conn = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
                    length = resp.getheader("Content-Length")
                    if self.command == "HEAD" and length is not None:
                        kept.append(("Content-Length", length))
                    self._answer(resp.status, kept, data, head=self.command == "HEAD")
                finally:
                    conn.close()

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(
                self, status: int, headers: list[tuple[str, str]], data: bytes, head: bool = False
            ) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            def handle(self) -> None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    super().handle()  # a client may close a body it does not want

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @contextlib.contextmanager
    def answering(self, status: int, code: str, **headers: str) -> Iterator[None]:
        self.failing = (status, code, [(k.replace("_", "-"), v) for k, v in headers.items()])
        try:
            yield
        finally:
            self.failing = None

    def broken(self) -> contextlib.AbstractContextManager[None]:
        return self.answering(503, "SlowDown", Retry_After=str(RETRY_AFTER))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class S3Harness(Harness):
    """A fresh bucket seeded with two subjects' objects, and connector configs for it.

    Alice (customer 1) and Bob (customer 12) share key prefixes up to their
    ids, so a lookup that matched by bare string prefix would mix them up.
    Their objects differ in every value the kit compares, content types and
    last-modified seconds included.

    The kit's config leaves out ``correction``: the kit reads a corrected field
    at the top level of disclosure records, while an S3 record nests the
    object's JSON under ``content``. ``test_connector.py`` covers correction.
    """

    connector_class = S3Connector
    system = "uploads"

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        super().__init__(request, tmp_path)
        moto: str = request.getfixturevalue("moto_server")
        self.s3: Any = s3_client(moto)
        self.bucket = f"dsr-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.proxy = FlakyProxy(moto)
        request.addfinalizer(self.proxy.close)

    # -- the kit's interface --------------------------------------------------

    def config(self) -> dict[str, Any]:
        full = self.full_config()
        del full["correction"]
        return full

    def full_config(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefixes": ["users/{customer_id}/", "exports/{email}/profile.json"],
            "endpoint_url": self.proxy.url,
            "region": "us-east-1",
            "access_key_id": "testing",
            "secret_access_key": SECRET,
            "suspension": {"tag": {"key": "dsr-suspended", "value": "true"}},
            "correction": {"content_type": "json", "correctable": ["name", "phone"]},
            "provision_log": {
                "key": "provisions/{email}.jsonl",
                "stop_marker": "provisions/{email}.stopped",
            },
        }

    def seed(self) -> Seeded:
        self.seed_objects(apart=True)
        return Seeded(subject=dict(ALICE), other=dict(BOB), unknown=dict(NOBODY))

    def invalid_configs(self) -> list[dict[str, Any]]:
        good = self.config()
        return [
            {**good, "prefixes": []},
            {**good, "prefixes": ["shared/"]},  # no placeholder: every subject's objects
            {**good, "prefixes": ["users/{Customer-Id}/"]},
            {**good, "prefixes": ["users/{customer_id}{email}/"]},
            {**good, "prefixes": ["users/{customer_id!r}/"]},
            {**good, "prefixes": ["../{email}/"]},
            {**good, "bucket": "Not_A_Bucket"},
            {**good, "erasure": "anonymise"},
            {**good, "region": "us east 1"},
            {**good, "endpoint_url": "minio:9000"},
            {**good, "provision_log": {"key": "p/{email}.jsonl", "stop_marker": "s/{other}"}},
            {**good, "secret_access_key": None},
            {**good, "unexpected": True},
        ]

    def secrets(self) -> list[str]:
        return [SECRET]

    def break_transiently(self) -> contextlib.AbstractContextManager[None]:
        return self.proxy.broken()

    def raw_view(self) -> list[dict[str, bytes]]:
        """Every object, key and body, but the provision log (kept by law) and the
        ``.bak`` object seeded outside the configured keys on purpose (the kit would
        rightly report it: the config, not the connector, leaves it behind)."""
        listed = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return [
            {o["Key"]: self.s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()}
            for o in listed
            if not o["Key"].startswith("provisions/") and not o["Key"].endswith(".bak")
        ]

    def is_suspended(self, connector: S3Connector, subject: dict[str, str]) -> bool:
        keys = self.keys_of(subject)
        return bool(keys) and all(
            {"Key": "dsr-suspended", "Value": "true"}
            in self.s3.get_object_tagging(Bucket=self.bucket, Key=k)["TagSet"]
            for k in keys
        )

    # -- helpers for the direct tests -----------------------------------------

    def connector(self, **overrides: Any) -> S3Connector:
        return S3Connector(self.system, {**self.full_config(), **overrides})

    def put(self, key: str, body: bytes | str, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else body
        extra = {"ContentType": content_type} if content_type else {}
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)

    def seed_objects(self, *, apart: bool = False) -> None:
        """Bob's objects, then Alice's; ``apart`` puts them in different seconds, since
        S3 gives last-modified times in whole seconds."""
        self.put("users/12/profile.json", '{"name": "Bob Other", "phone": "012"}', BOB_JSON)
        self.put("users/12/notes.txt", "# notes about Bob Other", "text/markdown")
        self.put("users/12/avatar.jpg", b"\xff\xd8\xff\xe0" + bytes(32), "image/jpeg")
        self.put(
            "exports/bob@example.com/profile.json", '{"name": "Bob Other", "tier": "silver"}', ""
        )
        self.put("provisions/bob@example.com.jsonl", BOB_PROVISIONS, "application/x-ndjson")
        if apart:
            time.sleep(1.02 - time.time() % 1)
        self.put("users/1/profile.json", '{"name": "Alice Example", "phone": "01"}')
        self.put("users/1/notes.txt", "notes about Alice Example", "text/plain; charset=utf-8")
        self.put("users/1/avatar.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png")
        self.put(
            "exports/alice@example.com/profile.json", '{"name": "Alice Example", "tier": "gold"}'
        )
        self.put("exports/alice@example.com/profile.json.bak", b"{}")  # not a configured key
        self.put("provisions/alice@example.com.jsonl", ALICE_PROVISIONS, "application/x-ndjson")

    def all_keys(self) -> list[str]:
        out = self.s3.list_objects_v2(Bucket=self.bucket)
        return sorted(o["Key"] for o in out.get("Contents", []))

    def keys_of(self, subject: dict[str, str]) -> list[str]:
        cid, email = subject.get("customer_id"), subject.get("email")
        return [
            k
            for k in self.all_keys()
            if k.startswith(f"users/{cid}/") or k == f"exports/{email}/profile.json"
        ]

    def versions(self) -> list[tuple[str, str]]:
        out = self.s3.list_object_versions(Bucket=self.bucket)
        found = [(v["Key"], v["VersionId"]) for v in out.get("Versions", [])]
        found += [(m["Key"], m["VersionId"]) for m in out.get("DeleteMarkers", [])]
        return sorted(found)
