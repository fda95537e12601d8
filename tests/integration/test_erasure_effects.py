"""Erasures through a broker killed mid-burst: every erasure's effect is checked in every
system's own data, and nobody else's data is touched.

Each principal has a look-alike: the same name, phone and address under another email and
customer id, with orders and shipments of their own. Only the principal's rows may change.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from services.demo.scenario import event
from services.ledger import Ledger
from services.stack import Stack
from tests.integration.fixtures import DEMO_DATAMAP, settings_for

pytestmark = pytest.mark.integration

N = 40
FINAL = ("completed", "partially_completed", "failed", "refused")


def _principal(i: int) -> dict[str, str]:
    return {"email": f"p{i}@example.jp"}


def _seed_people(home: Path) -> None:
    """N principals and N look-alikes, each with two orders, each order shipped."""
    crm, orders, shipping, search = (
        sqlite3.connect(home / f"{db}.db") for db in ("crm", "orders", "shipping", "search")
    )
    for i in range(N):
        for who, email in (("p", f"p{i}@example.jp"), ("l", f"p{i}@example.com")):
            cid = f"C-{who}{i}"
            name, phone, address = f"山田 {i}", f"090-0000-{i:04d}", f"東京都{i}"
            crm.execute(
                "INSERT INTO customers (customer_id, name, email, phone, address) "
                "VALUES (?,?,?,?,?)",
                (cid, name, email, phone, address),
            )
            search.execute("INSERT INTO profile_index VALUES (?,?)", (email, name))
            for n in (1, 2):
                oid = f"O-{who}{i}-{n}"
                orders.execute(
                    "INSERT INTO orders VALUES (?,?,?,?,?,0)", (oid, cid, "tea", 1000, address)
                )
                shipping.execute(
                    "INSERT INTO shipments VALUES (?,?,?,?,?,0)",
                    (oid, "Yamato", f"YT-{who}{i}{n}", name, address),
                )
    for db in (crm, orders, shipping, search):
        db.commit()
        db.close()


def _rows(home: Path, db: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(home / f"{db}.db") as conn:
        return conn.execute(sql, args).fetchall()


def _assert_erased(home: Path, i: int) -> None:
    """The principal's data is gone from every system; the look-alike's is all there."""
    email, cid, address = f"p{i}@example.jp", f"C-p{i}", f"東京都{i}"
    assert _rows(home, "crm", "SELECT 1 FROM customers WHERE email = ?", email) == []
    assert _rows(home, "crm", "SELECT 1 FROM customers WHERE customer_id = ?", cid) == []
    assert _rows(home, "search", "SELECT 1 FROM profile_index WHERE email = ?", email) == []
    kept = _rows(
        home,
        "orders",
        "SELECT customer_id, shipping_address FROM orders WHERE order_id LIKE ?",
        f"O-p{i}-%",
    )
    assert len(kept) == 2, f"p{i}: orders are kept for accounting, anonymised"
    for customer_id, shipping_address in kept:
        assert customer_id != cid, f"p{i}: an order still names the customer"
        assert shipping_address != address, f"p{i}: an order still holds the address"
    for name, addr in _rows(
        home,
        "shipping",
        "SELECT recipient_name, delivery_address FROM shipments WHERE order_id LIKE ?",
        f"O-p{i}-%",
    ):
        assert name != f"山田 {i}", f"p{i}: a shipment still names them"
        assert addr != address, f"p{i}: a shipment still holds the address"
    # the look-alike, untouched everywhere
    lookalike = f"p{i}@example.com"
    assert _rows(home, "crm", "SELECT customer_id FROM customers WHERE email = ?", lookalike) == [
        (f"C-l{i}",)
    ]
    assert len(_rows(home, "search", "SELECT 1 FROM profile_index WHERE email = ?", lookalike)) == 1
    assert (
        _rows(
            home,
            "orders",
            "SELECT customer_id, shipping_address FROM orders WHERE order_id LIKE ?",
            f"O-l{i}-%",
        )
        == [(f"C-l{i}", address)] * 2
    )
    assert (
        _rows(
            home,
            "shipping",
            "SELECT recipient_name, delivery_address FROM shipments WHERE order_id LIKE ?",
            f"O-l{i}-%",
        )
        == [(f"山田 {i}", address)] * 2
    )


def test_erasures_through_a_killed_broker_leave_no_data_behind(tmp_path: Path) -> None:
    # The demo's 60 s request timeout would cut off requests slowed by the broker's loss;
    # this test is about their effects, so it gives them the time a deployment would.
    datamap = DEMO_DATAMAP.read_text().replace(
        "request_timeout_seconds: 60", "request_timeout_seconds: 900"
    )
    assert "request_timeout_seconds: 900" in datamap
    settings = settings_for(tmp_path, datamap)
    _seed_people(tmp_path)
    requests = [
        json.dumps(
            event(f"erase-{i}", "erasure", _principal(i), grounds=["no_longer_needed"])
        ).encode()
        for i in range(N)
    ]
    ledger = Ledger(settings.database_url)
    with Stack(settings, log_dir=tmp_path / "logs") as stack:
        stack.wait_joined()
        submitter = stack.submitter()
        submitter.submit_all(requests)
        submitter.close()
        # Kill the broker once some erasures are done and others are in flight.
        deadline = time.monotonic() + 120
        while ledger.count_by_status().get("completed", 0) < 3:
            assert time.monotonic() < deadline, ledger.count_by_status()
            time.sleep(0.05)
        assert stack.broker is not None
        stack.broker.process.send_signal(signal.SIGKILL)
        stack.broker.process.wait()
        stack.restart_broker()
        deadline = time.monotonic() + 240
        while sum(ledger.count_by_status().get(s, 0) for s in FINAL) < N:
            assert time.monotonic() < deadline, ledger.count_by_status()
            for name in stack.check_alive():
                stack.spawn(name)
            time.sleep(0.2)
    statuses = {}
    for i in range(N):
        response = ledger.response(f"erase-{i}")
        assert response is not None
        statuses[i] = response.body["status"]
        actions = [e.action for e in ledger.timeline(f"erase-{i}")]
        assert actions.count("completed") == 1, (i, actions)
    ledger.close()
    for i in range(N):
        _assert_erased(tmp_path, i)
    assert set(statuses.values()) == {"completed"}, statuses
