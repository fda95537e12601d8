"""A subject known only by email is resolved first, then reaches orders and shipping;
erasure order holds."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from services.client import Watcher
from services.demo.scenario import event
from services.ledger import Ledger, as_utc
from streams import topics
from tests.integration.fixtures import joined_stack, settings_for

pytestmark = pytest.mark.integration


def test_email_only_erasure_reaches_every_system_in_dependency_order(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
        submitter = stack.submitter()
        erase = event("ir-1", "erasure", {"email": "jiro@example.jp"}, grounds=["no_longer_needed"])
        submitter.submit_all([json.dumps(erase).encode()])
        [(_, response)] = watcher.collect(lambda seen: len(seen) >= 1, timeout_s=60)
        submitter.close()
        watcher.close()

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
