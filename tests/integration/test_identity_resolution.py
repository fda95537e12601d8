"""A subject known only by email is resolved first, then reaches orders and shipping;
erasure order holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from services.demo.scenario import event
from services.ledger import Ledger, as_utc
from tests.integration.fixtures import answer, joined_stack, notice_text, settings_for

pytestmark = pytest.mark.integration


def test_email_only_erasure_reaches_every_system_in_dependency_order(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        erase = event("ir-1", "erasure", {"email": "jiro@example.jp"}, grounds=["no_longer_needed"])
        response = answer(stack, erase)
        told = notice_text(tmp_path, "ir-1")

    assert response["status"] == "completed"
    outcome = {s["system"]: s for s in response["systems"]}
    assert {k: v["status"] for k, v in outcome.items()} == {
        "crm": "ok",
        "search_index": "ok",
        "orders": "ok",
        "shipping": "ok",
        "partners": "not_applicable",
        "provision_ledger": "not_applicable",
    }
    assert all(outcome[s]["changed"] == 1 for s in ("crm", "search_index", "orders", "shipping"))
    # orders and shipping keep their rows with Jiro's identifying columns anonymised: the
    # principal is told so, and erasure is claimed only where rows were deleted
    assert {s: outcome[s]["kept"] for s in ("crm", "search_index", "orders", "shipping")} == {
        "crm": 0,
        "search_index": 0,
        "orders": 1,
        "shipping": 1,
    }
    kept = "1 record(s) kept, with the fields that identify you removed or pseudonymised"
    assert told.count(kept) == 2 and told.count("1 record(s) erased") == 2, told
    assert told.count("1件の記録は保持し") == 2 and told.count("1件を消去しました") == 2, told

    ledger = Ledger(settings.database_url)
    every = ledger.tasks("ir-1")
    lookups = {t.system: t for t in every if ":lookup:" in t.task_id}
    tasks = {t.system: t for t in every if ":lookup:" not in t.task_id}
    # identity resolution first, read only: email → crm finds customer_id → orders finds
    # order ids (shipping discovers nothing, so is never looked up)
    assert {s: t.wave for s, t in lookups.items()} == {"crm": 0, "orders": 1}
    first_action = min(as_utc(t.created_at) for t in tasks.values())
    assert all(as_utc(t.finished_at) <= first_action for t in lookups.values())
    # then erasure, each identity source after what it led to, and erase_after: the search
    # index only once the CRM erasure has finished
    for later, earlier in (("orders", "shipping"), ("crm", "orders"), ("search_index", "crm")):
        assert as_utc(tasks[later].created_at) >= as_utc(tasks[earlier].finished_at)
    actions = [e.action for e in ledger.timeline("ir-1")]
    assert actions.count("identifiers_discovered") == 2
    ledger.close()

    with sqlite3.connect(tmp_path / "shipping.db") as db:
        rows = dict(db.execute("SELECT order_id, recipient_name FROM shipments").fetchall())
    assert rows["O-4"] != "佐藤 次郎"  # Jiro's shipment, reached through his order id
    assert rows["O-3"] == "鈴木 花子"  # another customer's, untouched
