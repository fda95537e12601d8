"""The HTTP connector against a system that answers badly: every answer is a connector
error of the right class, naming the system and never the body or an identifier, and
no answer makes the call hang.

``test_connector.py`` covers busy answers with ``Retry-After``, an HTML page, bodies over
the size cap, JSON nested too deeply, a dropped connection, a slow first byte, a teapot,
bad credentials, a redirect, a repeating cursor, a link to another origin and
``max_pages``; this file covers the rest.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from connectors import FatalError, RetriableError
from connectors.http import HTTPConnector
from connectors.http.api import API, _BudgetedBackend
from connectors.http.config import HTTPConfig
from tests.connectors.http.fixtures import ALICE, TOKEN, FakeSaaS, config, gzip_bomb

TIMEOUT_S = 0.5
#: The budget of a call whose answer comes at once, however bad: long enough that a host
#: busy with other work cannot make it a time-out (a hang would still be one, the wrong
#: error).
ANSWERED_S = 10.0
#: Never shown in a message: the token, the subject and what the bodies hold.
UNSAYABLE = (TOKEN, "alice", "example.com", "example.invalid", "\ufffd")


def connector(saas: FakeSaaS, **overrides: Any) -> HTTPConnector:
    settings = {"timeout_s": TIMEOUT_S, "max_response_bytes": 1024 * 1024, **overrides}
    return HTTPConnector("saas", {**config(saas.url), **settings})


def with_endpoints(saas: FakeSaaS, **endpoints: Any) -> HTTPConnector:
    cfg = config(saas.url)
    cfg["endpoints"] = {**cfg["endpoints"], **endpoints}
    return HTTPConnector("saas", {**cfg, "timeout_s": TIMEOUT_S, "max_pages": 5})


def assert_clear(error: Exception, request: str = "GET /users/{email}/records") -> None:
    message = str(error)
    assert message.startswith(f"system 'saas': {request}"), message
    assert not [s for s in UNSAYABLE if s in message], message


@pytest.fixture
def other() -> Iterator[FakeSaaS]:
    """A second server: another origin, which must never see the auth header."""
    server = FakeSaaS()
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [
        ("malformed", FatalError, "not JSON"),
        ("not-utf8", FatalError, "not JSON"),
        ("long-number", FatalError, "not JSON"),
        ("not-objects", FatalError, "expected a list of objects at data.items, found a list"),
        ("top-level-list", FatalError, "the response has nothing at data.items"),
        ("gzip-bomb", FatalError, "larger than 1048576 bytes"),
        ("gzip-bomb-chunked", FatalError, "larger than 1048576 bytes"),
        ("bad-gzip", FatalError, "sent a body that does not decode as gzip"),
        ("brotli", FatalError, "sent a body in an unsupported Content-Encoding"),
        ("403", FatalError, "403 Forbidden (check the auth headers)"),
        ("redirect-loop", FatalError, "302 Found"),
        ("truncated", RetriableError, "(RemoteProtocolError)"),
        ("truncated-stall", RetriableError, "timed out: took longer than 0.5 s (ReadTimeout)"),
        ("stall", RetriableError, "timed out: took longer than 0.5 s (ReadTimeout)"),
        ("trickle", RetriableError, "timed out: took longer than 0.5 s (ReadTimeout)"),
        ("header-trickle", RetriableError, "timed out: took longer than 0.5 s (ReadTimeout)"),
    ],
)
def test_a_bad_answer_is_the_right_error_promptly(
    saas: FakeSaaS, mode: str, error: type[Exception], message: str
) -> None:
    budget = TIMEOUT_S if "timed out" in message else ANSWERED_S
    conn = connector(saas, timeout_s=budget)
    started = time.monotonic()
    with saas.misbehaving(mode), pytest.raises(error) as err:
        conn.disclose(ALICE)
    elapsed = time.monotonic() - started

    assert type(err.value) is error
    assert message in str(err.value)
    assert_clear(err.value)
    assert elapsed < budget + 1.0, f"{mode} took {elapsed:.2f}s"
    assert len(saas.requests) == 1  # never followed, never retried by the connector


def test_a_request_over_its_budget_leaves_no_connection_open(saas: FakeSaaS) -> None:
    conn = connector(saas)
    with saas.misbehaving("header-trickle"), pytest.raises(RetriableError):
        conn.disclose(ALICE)
    client: Any = conn._api._client
    assert client._transport._pool.connections == []
    assert conn.disclose(ALICE)  # the next request has a budget of its own


def test_requests_through_a_proxy_from_the_environment_are_budgeted_too(
    saas: FakeSaaS, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    client: Any = API("saas", HTTPConfig.model_validate(config(saas.url)))._client
    transports = [client._transport, *client._mounts.values()]
    assert len(transports) == 3
    assert all(isinstance(t._pool._network_backend, _BudgetedBackend) for t in transports)


def test_a_gzip_bomb_is_refused_without_inflating_it(saas: FakeSaaS) -> None:
    conn = connector(saas)
    gzip_bomb()  # made before measuring: the server runs in this process
    tracemalloc.start()
    try:
        with saas.misbehaving("gzip-bomb"), pytest.raises(FatalError, match="larger than"):
            conn.disclose(ALICE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for a 1 MiB cap"


@pytest.mark.parametrize("mode", ["gzip", "deflate", "raw-deflate"])
def test_compressed_answers_are_read(saas: FakeSaaS, mode: str) -> None:
    plain = connector(saas).disclose(ALICE)
    with saas.misbehaving(mode):
        assert connector(saas).disclose(ALICE) == plain
    assert saas.requests[-1].headers["Accept-Encoding"] == "gzip, deflate"


def test_a_redirect_to_another_origin_is_refused_and_never_carries_the_auth_header(
    saas: FakeSaaS, other: FakeSaaS
) -> None:
    saas.redirect_to = f"{other.url}/api/v1/users/alice%40example.com/records"
    with saas.misbehaving("redirect"), pytest.raises(FatalError, match="302 Found") as err:
        connector(saas).disclose(ALICE)
    assert_clear(err.value)
    assert other.url.split("//")[1] not in str(err.value)
    assert other.requests == []
    assert saas.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_link_to_the_same_page_is_fatal(saas: FakeSaaS) -> None:
    with saas.misbehaving("stuck-link"), pytest.raises(FatalError) as err:
        connector(saas).third_party_records(ALICE)
    assert "pagination returned to a page it had read" in str(err.value)
    assert_clear(err.value, "GET /users/{email}/shares")
    assert len(saas.requests) == 2


PAGINGS = {
    "cursor": ("disclose", None),
    "page": (
        "disclose",
        {
            "path": "/users/{email}/orders",
            "records_path": "results",
            "pagination": {"type": "page", "param": "page", "size_param": "per_page", "size": 2},
        },
    ),
    "link": ("third_party_records", None),
}


@pytest.mark.parametrize("paging", sorted(PAGINGS))
def test_pagination_that_never_ends_stops_at_max_pages(saas: FakeSaaS, paging: str) -> None:
    op, endpoint = PAGINGS[paging]
    conn = with_endpoints(saas, **({op: endpoint} if endpoint else {}))
    with saas.misbehaving("endless"), pytest.raises(FatalError) as err:
        getattr(conn, op)(ALICE)
    assert "more than max_pages (5) pages of records" in str(err.value)
    assert str(err.value).startswith("system 'saas': GET /users/{email}/")
    assert TOKEN not in str(err.value) and "alice" not in str(err.value)
    assert len(saas.requests) == 5
