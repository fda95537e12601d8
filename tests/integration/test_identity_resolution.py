"""A subject known only by email reaches orders and shipping; erasure order holds."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from services.client import Watcher
from services.demo.scenario import event
from services.ledger import Ledger, as_utc
from services.stack import Stack
from streams import topics
from tests.integration.fixtures import settings_for

pytestmark = pytest.mark.integration


def test_email_only_erasure_reaches_every_system_in_dependency_order(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with Stack(settings, log_dir=tmp_path / "logs") as stack:
        stack.wait_joined()
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
    tasks = {t.system: t for t in ledger.tasks("ir-1")}
    # identity resolution: email → crm finds customer_id → orders finds order ids → shipping
    assert (tasks["crm"].wave, tasks["orders"].wave, tasks["shipping"].wave) == (0, 1, 2)
    # erase_after: the search index is erased only once the CRM erasure has finished
    assert as_utc(tasks["search_index"].created_at) >= as_utc(tasks["crm"].finished_at)
    actions = [e.action for e in ledger.timeline("ir-1")]
    assert actions.count("identifiers_discovered") == 2
    assert actions.count("wave_planned") == 2
    ledger.close()

    with sqlite3.connect(tmp_path / "shipping.db") as db:
        rows = dict(db.execute("SELECT order_id, recipient_name FROM shipments").fetchall())
    assert rows["O-4"] != "佐藤 次郎"  # Jiro's shipment, reached through his order id
    assert rows["O-3"] == "鈴木 花子"  # another customer's, untouched
