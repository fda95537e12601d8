"""The HTTP connector against a real HTTP server: the fake SaaS in ``fixtures.py``."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from connectors import (
    ConfigError,
    ConnectorError,
    FatalError,
    NotSupported,
    OperationResult,
    RetriableError,
)
from connectors.http import HTTPConnector
from services.broker import free_port
from streams.records import Change, FieldChange, Kind
from tests.connectors.http.fixtures import (
    ALICE,
    BOB,
    NOBODY,
    ODD,
    RETRY_AFTER,
    TOKEN,
    FakeSaaS,
    config,
)


def connector(saas: FakeSaaS, **overrides: Any) -> HTTPConnector:
    return HTTPConnector("saas", {**config(saas.url), **overrides})


def with_endpoints(saas: FakeSaaS, **endpoints: Any) -> HTTPConnector:
    cfg = config(saas.url)
    return HTTPConnector("saas", {**cfg, "endpoints": {**cfg["endpoints"], **endpoints}})


# -- reading, and the three kinds of pagination -------------------------------


def test_check_calls_the_check_endpoint(saas: FakeSaaS) -> None:
    result = connector(saas).check()
    assert result.ok, result.message
    assert saas.requests[-1].raw_path == "/api/v1/me"


def test_check_without_a_check_endpoint_probes_base_url(saas: FakeSaaS) -> None:
    cfg = config(saas.url)
    del cfg["endpoints"]["check"]
    assert HTTPConnector("saas", cfg).check().ok
    cfg["headers"] = {"Authorization": "Bearer wrong"}
    result = HTTPConnector("saas", cfg).check()
    assert not result.ok and "401" in result.message


def test_disclose_follows_cursors_and_returns_only_the_subject(saas: FakeSaaS) -> None:
    result = connector(saas).disclose(ALICE)

    assert [r.get("name") or r["item"] for r in result.records] == [
        "Alice Example",
        "book",
        "lamp",
        "desk",
    ]
    assert {r["_source"] for r in result.records} == {"/users/{email}/records"}
    assert [s.raw_path.split("?")[-1] for s in saas.requests] == [
        "/api/v1/users/alice%40example.com/records",
        "cursor=2",
    ]
    assert result.identities == [{"email": "alice@example.com", "customer_id": "1"}]
    assert result.discovered_identifiers == {}
    assert {"email", "name", "order_id", "item"} <= set(result.fields)
    assert "Bob" not in json.dumps(result.records)


def test_numbered_pages_are_read_until_an_empty_page(saas: FakeSaaS) -> None:
    pages = {"type": "page", "param": "page", "size_param": "per_page", "size": 2}
    orders = {"path": "/users/{email}/orders", "records_path": "results", "pagination": pages}
    result = with_endpoints(saas, disclose=orders).disclose(ALICE)

    assert [r["item"] for r in result.records] == ["book", "lamp", "desk"]
    assert [s.raw_path.split("?")[1] for s in saas.requests] == [
        "page=1&per_page=2",
        "page=2&per_page=2",
        "page=3&per_page=2",
    ]


def test_link_headers_are_followed(saas: FakeSaaS) -> None:
    result = connector(saas).third_party_records(ALICE)

    assert [r["recipient"] for r in result.records] == ["Partner 0", "Partner 1", "Partner 2"]
    assert [s.raw_path for s in saas.requests] == [
        "/api/v1/users/alice%40example.com/shares",
        "/api/v1/users/alice%40example.com/shares?after=2",
    ]


def test_max_pages_stops_an_endless_listing(saas: FakeSaaS) -> None:
    saas.page_size = 1
    with pytest.raises(FatalError, match=r"more than max_pages \(3\)"):
        connector(saas, max_pages=3).disclose(ALICE)


def test_a_link_to_another_origin_is_not_followed(saas: FakeSaaS) -> None:
    with saas.misbehaving("foreign-link"), pytest.raises(FatalError, match="another origin"):
        connector(saas).third_party_records(ALICE)
    assert len(saas.requests) == 1


def test_a_repeating_cursor_is_fatal(saas: FakeSaaS) -> None:
    with saas.misbehaving("stuck-cursor"), pytest.raises(FatalError, match="returned to a page"):
        connector(saas).disclose(ALICE)
    assert len(saas.requests) == 2


@pytest.mark.parametrize("identifiers", [NOBODY, {"customer_id": "1"}, {}])
def test_an_unknown_subject_is_an_empty_result(saas: FakeSaaS, identifiers: dict[str, str]) -> None:
    conn = connector(saas)
    assert conn.disclose(identifiers) == OperationResult()
    assert conn.third_party_records(identifiers).records == []
    assert conn.erase(identifiers, grounds=["withdrawn"]).changed == 0
    assert conn.suspend(identifiers, grounds=["withdrawn"]).changed == 0
    assert conn.correct(identifiers, [Change(field="name", value="X")]).changed == 0
    assert all(s.method == "GET" for s in saas.requests)


def test_a_404_is_an_error_when_so_configured(saas: FakeSaaS) -> None:
    with pytest.raises(FatalError, match="404 Not Found"):
        connector(saas, not_found_is_empty=False).disclose(NOBODY)


def test_identifiers_are_url_encoded_in_paths(saas: FakeSaaS) -> None:
    conn = connector(saas)
    result = conn.disclose(ODD)

    assert result.records[0]["email"] == ODD["email"]
    assert saas.requests[0].raw_path == (
        "/api/v1/users/ann%20marie%2Fo%27neil%2Bx%40example.com/records"
    )
    assert conn.erase(ODD, grounds=["withdrawn"]).changed == 2
    assert ODD["email"] not in saas.users and "alice@example.com" in saas.users


def test_dot_segments_are_refused(saas: FakeSaaS) -> None:
    for value in (".", ".."):
        with pytest.raises(FatalError, match="cannot stand in a URL path segment"):
            connector(saas).disclose({"email": value})
    assert saas.requests == []


def test_query_and_body_templates_are_filled(saas: FakeSaaS) -> None:
    search = {
        "method": "POST",
        "path": "/users/{email}/records",
        "query": {"who": "{email}", "fixed": "a b"},
        "body": {"filter": {"email": "{email}", "tags": ["x", "{email}"]}, "n": 5},
        "records_path": "data.items",
    }
    # The fake serves records on GET only; a 405 shows what was sent.
    with pytest.raises(FatalError, match="405"):
        with_endpoints(saas, disclose=search).disclose(ODD)
    sent = saas.requests[-1]
    assert sent.raw_path.endswith("?who=ann+marie%2Fo%27neil%2Bx%40example.com&fixed=a+b")
    assert sent.body == {"filter": {"email": ODD["email"], "tags": ["x", ODD["email"]]}, "n": 5}


# -- changes ------------------------------------------------------------------


def test_correct_sends_only_what_differs_and_reports_old_values(saas: FakeSaaS) -> None:
    conn = connector(saas)
    changes = [
        Change(field="name", value="Alice Corrected"),
        Change(field="phone", value="+81-3-1111"),  # already so
        Change(field="shoe_size", value=38),
    ]

    plan = conn.correct(ALICE, changes, dry_run=True)
    assert plan.dry_run and plan.changed == 1
    assert saas.users["alice@example.com"]["profile"]["name"] == "Alice Example"
    result = conn.correct(ALICE, changes)

    assert saas.requests[-1].method == "PATCH"
    assert saas.requests[-1].body == {"set": {"name": "Alice Corrected"}}
    assert result.changed == 1 and result.fields == ["name"]
    assert result.correction is not None
    assert result.correction.changes == [
        FieldChange(
            table="/users/{email}/records", field="name", old="Alice Example", new="Alice Corrected"
        )
    ]
    assert result.correction.not_found == ["shoe_size"]
    assert conn.correct(ALICE, changes).changed == 0


def test_without_a_read_endpoint_changes_are_sent_unplanned(saas: FakeSaaS) -> None:
    cfg = config(saas.url)
    del cfg["endpoints"]["disclose"]
    cfg["endpoints"]["suspend"]["changed_path"] = "suspended"
    conn = HTTPConnector("saas", cfg)

    assert conn.suspend(ALICE, grounds=["unlawful"], dry_run=True).changed == 1
    assert not saas.users["alice@example.com"]["profile"]["suspended"]
    first = conn.suspend(ALICE, grounds=["unlawful"])
    assert first.changed == 1 and first.details["planned"] is False
    assert saas.requests[-1].body == {"grounds": ["unlawful"], "who": "alice@example.com"}
    assert conn.suspend(ALICE, grounds=["unlawful"]).changed == 0  # the API's own count
    assert conn.erase(NOBODY, grounds=["withdrawn"]).changed == 0  # a 404


def test_a_missing_count_is_fatal(saas: FakeSaaS) -> None:
    suspend = {"method": "POST", "path": "/users/{email}/suspend", "changed_path": "count"}
    with pytest.raises(FatalError, match="no count of changed records at count"):
        with_endpoints(saas, suspend=suspend).suspend(ALICE, grounds=["unlawful"])


FORGET = {
    "method": "POST",
    "path": "/users/{email}/forget",
    "changed_path": "result.changed",
    "kept_path": "result.kept",
}


def test_an_erasure_that_keeps_records_says_how_many(saas: FakeSaaS) -> None:
    orders = len(saas.users["alice@example.com"]["orders"])

    result = with_endpoints(saas, erase=FORGET).erase(ALICE, grounds=["withdrawn"])

    assert (result.changed, result.kept) == (1 + orders, orders)
    assert "alice@example.com" not in saas.users and len(saas.unlinked_orders) == orders


def test_more_kept_than_changed_is_fatal(saas: FakeSaaS) -> None:
    swapped = {**FORGET, "changed_path": "result.kept", "kept_path": "result.changed"}
    with pytest.raises(FatalError, match="records kept of"):
        with_endpoints(saas, erase=swapped).erase(ALICE, grounds=["withdrawn"])


def test_an_erasure_declared_to_anonymise_is_told_as_keeping_every_record(
    saas: FakeSaaS,
) -> None:
    records = 1 + len(saas.users["alice@example.com"]["orders"])
    anonymise = {"method": "POST", "path": "/users/{email}/anonymise", "anonymises": True}
    conn = with_endpoints(saas, erase=anonymise)

    planned = conn.erase(ALICE, grounds=["withdrawn"], dry_run=True)
    result = conn.erase(ALICE, grounds=["withdrawn"])

    assert (planned.changed, planned.kept) == (result.changed, result.kept) == (records, records)
    assert "alice@example.com" not in saas.users
    assert [u["profile"]["name"] for k, u in saas.users.items() if k.startswith("anon-")] == ["***"]


@pytest.mark.parametrize(
    ("endpoints", "error"),
    [
        ({"erase": {**FORGET, "anonymises": True}}, "not both"),
        ({"suspend": {**FORGET, "path": "/users/{email}/suspend"}}, "for the erase endpoint"),
        (
            {"suspend": {"method": "POST", "path": "/u/{email}", "anonymises": True}},
            "for the erase endpoint",
        ),
    ],
)
def test_counts_of_records_kept_are_configured_on_the_erasure_only(
    saas: FakeSaaS, endpoints: dict[str, Any], error: str
) -> None:
    with pytest.raises(ConfigError, match=error):
        with_endpoints(saas, **endpoints)


def test_stop_third_party_provision(saas: FakeSaaS) -> None:
    conn = connector(saas)
    assert conn.stop_third_party_provision(ALICE, grounds=["objection"], dry_run=True).changed == 3
    assert not saas.users["alice@example.com"]["shares_stopped"]
    assert conn.stop_third_party_provision(ALICE, grounds=["objection"]).changed == 3
    assert saas.users["alice@example.com"]["shares_stopped"]
    assert not saas.users["bob@example.com"]["shares_stopped"]


def test_capabilities_are_the_configured_operations(saas: FakeSaaS) -> None:
    cfg = config(saas.url)
    cfg["endpoints"] = {"disclose": cfg["endpoints"]["disclose"]}
    conn = HTTPConnector("saas", cfg)
    assert conn.supported_kinds == {Kind.DISCLOSURE}
    with pytest.raises(NotSupported):
        conn.erase(ALICE, grounds=["withdrawn"])
    assert connector(saas).supported_kinds == frozenset(Kind) - {Kind.PURPOSE_NOTIFICATION}


# -- failures -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["429", "429-date", "503"])
def test_busy_answers_are_retriable_with_retry_after(saas: FakeSaaS, mode: str) -> None:
    conn = connector(saas)
    with saas.misbehaving(mode), pytest.raises(RetriableError) as err:
        conn.disclose(ALICE)
    assert err.value.retry_after is not None
    assert RETRY_AFTER - 2 <= err.value.retry_after <= RETRY_AFTER
    assert mode[:3] in str(err.value)
    assert len(saas.requests) == 1  # the runner retries, not the connector


def test_a_huge_retry_after_is_capped(saas: FakeSaaS) -> None:
    with saas.misbehaving("503"), pytest.raises(RetriableError) as err:
        connector(saas, max_retry_after_s=5).disclose(ALICE)
    assert err.value.retry_after == 5


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [
        ("garbage", FatalError, "not JSON"),
        ("huge", FatalError, "larger than 1048576 bytes"),
        ("huge-chunked", FatalError, "larger than 1048576 bytes"),
        ("shape", FatalError, "expected a list of objects at data.items, found a string"),
        ("deep", FatalError, "not JSON"),
        ("redirect", FatalError, "302 Found"),
        ("teapot", FatalError, "418 I'm a Teapot"),
        ("drop", RetriableError, "failed to connect (RemoteProtocolError)"),
    ],
)
def test_adversarial_answers_are_connector_errors(
    saas: FakeSaaS, mode: str, error: type[Exception], message: str
) -> None:
    conn = connector(saas, max_response_bytes=1024 * 1024)
    with saas.misbehaving(mode), pytest.raises(error) as err:
        conn.disclose(ALICE)
    assert message in str(err.value)
    assert "GET /users/{email}/records" in str(err.value)
    for secret in (TOKEN, "alice", "example.invalid"):
        assert secret not in str(err.value)


def test_a_response_missing_its_records_path_is_fatal(saas: FakeSaaS) -> None:
    disclose = {"path": "/users/{email}/records", "records_path": "data.rows"}
    with pytest.raises(FatalError, match="nothing at data.rows"):
        with_endpoints(saas, disclose=disclose).disclose(ALICE)


def test_a_slow_server_times_out_retriably(saas: FakeSaaS) -> None:
    with saas.misbehaving("slow"), pytest.raises(RetriableError, match="timed out"):
        connector(saas, timeout_s=0.3).disclose(ALICE)


def test_a_closed_port_is_retriable() -> None:
    conn = HTTPConnector("saas", config(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(RetriableError, match="ConnectError"):
        conn.disclose(ALICE)
    assert not conn.check().ok


def test_bad_credentials_are_fatal(saas: FakeSaaS) -> None:
    conn = connector(saas, headers={"Authorization": "Bearer wrong"})
    with pytest.raises(FatalError, match="401 Unauthorized.*check the auth headers"):
        conn.disclose(ALICE)


# -- secrets ------------------------------------------------------------------


def test_the_auth_header_is_sent_but_never_shown(
    saas: FakeSaaS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    conn = connector(saas, headers={"Authorization": f"Bearer {TOKEN}", "X-Api-Key": TOKEN})
    result = conn.disclose(ALICE)
    errors = []
    for mode in ("teapot", "garbage", "503"):
        with saas.misbehaving(mode), pytest.raises(ConnectorError) as err:
            conn.disclose(ALICE)
        errors.append(str(err.value))

    assert all(s.headers["Authorization"] == f"Bearer {TOKEN}" for s in saas.requests)
    assert saas.requests[0].headers["X-Api-Key"] == TOKEN
    shown = [repr(conn), str(conn), repr(conn.config), str(conn.config), repr(result), *errors]
    assert not [s for s in shown if TOKEN in s]
    assert TOKEN not in caplog.text
    assert "alice" not in caplog.text  # request URLs are logged without path or query
    assert any("HTTP Request: GET http://127.0.0.1" in r.getMessage() for r in caplog.records)


def test_config_errors_never_show_header_values() -> None:
    with pytest.raises(ConfigError) as err:
        HTTPConnector(
            "saas",
            {
                "base_url": "https://api.example.com",
                "headers": {"Authorization": f"Bearer {TOKEN}\n"},
                "endpoints": {"disclose": {"path": "/u/{email}"}},
            },
        )
    assert "line break" in str(err.value) and TOKEN not in str(err.value)


def test_retry_after_dates_in_the_past_mean_now(saas: FakeSaaS) -> None:
    from connectors.http.api import API

    api = API("saas", connector(saas).config)
    try:
        assert api.retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
        assert api.retry_after("soon") is None
        assert api.retry_after("-5") is None
        later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
        assert 28 <= (api.retry_after(later) or 0) <= 30
    finally:
        api.close()


def test_bob_is_untouched_by_alices_erasure(saas: FakeSaaS) -> None:
    conn = connector(saas)
    bob_before = conn.disclose(BOB).records
    assert conn.erase(ALICE, grounds=["withdrawn"]).changed == 4
    assert conn.disclose(ALICE).records == []
    assert conn.disclose(BOB).records == bob_before
