"""The dashboard's server: its page, its JSON, and what it never shows."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.dashboard import Dashboard
from services.ledger import Ledger
from tests.fixtures.ledger_rows import event, finish


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    ledger.migrate()
    finish(ledger, "r-1", {"crm": "ok", "erp": "failed"}, took=0.05)
    ledger.complete("r-1", "partially_completed", {"reasons": []}, latency_ms=60)
    ledger.admit(
        event("r-2"), "hold", "verification_pending", datetime.now(UTC) - timedelta(days=1)
    )
    # an audit detail the drill-down must not show
    ledger.audit("r-1", "operator", "note", email="a@example.jp", reason_code="manual_check")
    ledger.close()
    return url


@pytest.fixture
def dashboard(ledger_url: str) -> Iterator[Dashboard]:
    d = Dashboard.start(ledger_url)
    yield d
    d.stop()


def get(dashboard: Dashboard, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(dashboard.url + path.lstrip("/"), timeout=5) as res:
            return res.status, dict(res.headers), res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(dashboard: Dashboard, path: str) -> Any:
    status, _, body = get(dashboard, path)
    assert status == 200, body
    return json.loads(body)


def test_the_page_and_its_assets_are_served_with_a_strict_policy(dashboard: Dashboard) -> None:
    status, headers, body = get(dashboard, "/")
    assert status == 200 and b"/static/dashboard.js" in body
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert headers["X-Content-Type-Options"] == "nosniff"
    for name, kind in [("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")]:
        status, headers, body = get(dashboard, f"/static/{name}")
        assert status == 200 and headers["Content-Type"].startswith(kind) and body
    for path in ("/static/../server.py", "/static/server.py", "/nope"):
        assert get(dashboard, path)[0] == 404, path
    assert get(dashboard, "/healthz")[2] == b"ok\n"


def test_overview_reports_the_ledger(dashboard: Dashboard) -> None:
    o = get_json(dashboard, "/api/overview")
    assert {s["system"]: s["failed"] for s in o["systems"]} == {"crm": 0, "erp": 1}
    assert [r["request_id"] for r in o["deadlines"]["overdue"]] == ["r-2"]
    assert o["in_flight"]["by_status"] == {"held: verification_pending": 1}


def test_a_request_drill_down_shows_stages_but_no_personal_data(dashboard: Dashboard) -> None:
    r = get_json(dashboard, "/api/requests/r-1")
    assert [s["stage"] for s in r["stages"]] == [
        "intake",
        "system:crm",
        "system:erp",
        "aggregation",
        "total",
    ]
    assert "response" not in r
    assert all("error" not in t for t in r["tasks"])
    note = next(e for e in r["timeline"] if e["action"] == "note")
    assert note["detail"] == {"reason_code": "manual_check"}
    assert "a@example.jp" not in json.dumps(r)
    status, _, body = get(dashboard, "/api/requests/no-such-request")
    assert status == 404 and json.loads(body) == {"error": "no such request"}


def test_a_taken_port_falls_back_to_a_free_one(ledger_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = Dashboard.start(ledger_url, port)
        try:
            assert not d.url.endswith(f":{port}/")
            assert get(d, "/healthz")[0] == 200
        finally:
            d.stop()


def test_a_parked_request_is_counted_listed_and_explained(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    ledger.admit(event("r-3"), "proceed", None, datetime.now(UTC) + timedelta(days=3))
    where = "services/delivery/package.py:12 in build_package"
    assert ledger.park("r-3", "sweeper", "KeyError", where)
    ledger.close()
    d = Dashboard.start(ledger_url)
    try:
        parked = get_json(d, "/api/overview")["parked"]
        view = get_json(d, "/api/requests/r-3")
        _, _, page = get(d, "/")
    finally:
        d.stop()
    assert parked == {
        "total": 1,
        "requests": [
            {
                "request_id": "r-3",
                "kind": "disclosure",
                "error_code": "KeyError",
                "deadline": parked["requests"][0]["deadline"],
            }
        ],
    }
    assert view["status"] == "parked" and view["hold_reason"] == "KeyError"
    [entry] = [e for e in view["timeline"] if e["action"] == "parked"]
    assert entry["detail"] == {
        "stage": "sweeper",
        "error_code": "KeyError",
        "where": where,
        "was": "accepted",
    }
    assert b'id="parked"' in page


def test_the_processes_dsr_up_supervises_are_in_the_overview(
    ledger_url: str, tmp_path: Path
) -> None:
    report = {
        "broker": {"running": True, "pid": 10, "restarts": 0, "crash_loop": False},
        "worker-0": {"running": False, "pid": 11, "restarts": 6, "crash_loop": True},
    }
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "processes.json").write_text(json.dumps({"processes": report}))
    d = Dashboard.start(ledger_url, home=tmp_path)
    try:
        shown = get_json(d, "/api/overview")["processes"]
    finally:
        d.stop()
    assert shown == [
        {"name": "broker", "running": True, "restarts": 0, "crash_loop": False}
        | {"state": "running", "heartbeat_age_s": None},
        {"name": "worker-0", "running": False, "restarts": 6, "crash_loop": True}
        | {"state": "crash loop", "heartbeat_age_s": None},
    ]


def test_without_a_supervisor_there_are_no_processes_to_show(dashboard: Dashboard) -> None:
    assert get_json(dashboard, "/api/overview")["processes"] == []
