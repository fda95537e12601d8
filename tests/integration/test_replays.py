"""Replays through the real broker: one correctly signed erasure, sent byte for byte 50
times while its request is open, is fanned out once, and each system is asked each
thing once; the erasure is complete in the systems' own data, the look-alike untouched."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from services.client import read_all, request_key
from services.demo.scenario import TARO, event
from services.ledger import Ledger
from streams import topics
from tests.fixtures.ledger_reads import status_of
from tests.integration.fixtures import joined_stack, settings_for, wait_for

pytestmark = pytest.mark.integration

REPLAYS = 50
DATAMAP = """
request_timeout_seconds: 60
subject_identifiers: [email, customer_id]
purposes:
  - id: customer_account
    description: Managing the customer's account
systems:
  crm:
    connector: "tests.integration.fakes:CountsCalls"
    purposes: [customer_account]
    identifiers: [email]
    discovers: [customer_id]
    config:
      url: "sqlite:///${DSR_HOME}/crm.db"
      calls_file: "${DSR_HOME}/crm-calls.jsonl"
      tables:
        - name: customers
          key: {column: email, identifier: email}
          identifiers: {customer_id: customer_id}
          columns: [customer_id, name, email, phone, address]
          erasure: {strategy: delete}
  orders:
    connector: "tests.integration.fakes:CountsCalls"
    purposes: [customer_account]
    identifiers: [customer_id]
    config:
      url: "sqlite:///${DSR_HOME}/orders.db"
      calls_file: "${DSR_HOME}/orders-calls.jsonl"
      tables:
        - name: orders
          key: {column: customer_id, identifier: customer_id}
          columns: [order_id, customer_id, item, amount_jpy, shipping_address]
          erasure:
            strategy: anonymise
            columns: {shipping_address: mask, customer_id: hash}
"""
#: Taro's look-alike: the same name, an e-mail one letter away, an order of their own.
LOOK_ALIKE = ("C-1099", "山田 太郎", "tar0@example.jp", "090-9999-0000", "東京都千代田区1-9")


def _seed_look_alike(home: Path) -> None:
    with sqlite3.connect(home / "crm.db") as db:
        db.execute(
            "INSERT INTO customers (customer_id, name, email, phone, address) VALUES (?,?,?,?,?)",
            LOOK_ALIKE,
        )
    with sqlite3.connect(home / "orders.db") as db:
        db.execute("INSERT INTO orders VALUES ('O-99','C-1099','Kettle',8800,'東京都1-9',0)")


def _calls(home: Path, system: str) -> Counter[str]:
    path = home / f"{system}-calls.jsonl"
    return Counter(path.read_text().splitlines()) if path.exists() else Counter()


def test_fifty_replays_of_a_signed_erasure_run_each_system_once(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, DATAMAP)
    _seed_look_alike(tmp_path)
    erasure = event("replay-1", "erasure", TARO, grounds=["no_longer_needed"])
    ledger = Ledger(settings.database_url)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        submitter = stack.submitter()
        raw = json.dumps(erasure).encode()
        wire = submitter.sealer.seal_request(raw) if submitter.sealer else raw
        assert submitter.signer is not None
        headers = submitter.signer.headers(wire)  # signed once, sent 50 times as is
        for _ in range(REPLAYS):
            submitter.producer.send(
                topics.REQUESTS, key=request_key(wire), value=wire, headers=headers
            )
        submitter.close()

        def settled() -> bool:  # completed, and intake has read every copy
            read = sum(e.actor == "intake" for e in ledger.timeline("replay-1"))
            return status_of(ledger, "replay-1") == "completed" and read == REPLAYS

        wait_for("replay-1 completed, every copy read", settled)
        tasks = ledger.tasks("replay-1")
        sent = read_all(stack.bootstrap, [topics.tasks_topic(s) for s in ("crm", "orders")])
        assert not stack.check_alive()
    trail = ledger.timeline("replay-1")
    ledger.close()
    # fanned out once: each task on its system's topic once, never sent again
    assert Counter(r.topic for r in sent) == Counter(topics.tasks_topic(t.system) for t in tasks)
    intake = [(e.action, e.detail.get("key_id")) for e in trail if e.actor == "intake"]
    assert intake == [("received", "ops")] + [("duplicate_ignored", "ops")] * (REPLAYS - 1)
    # each system was asked each thing (a read or an erasure, of one identity unit) once
    for system in ("crm", "orders"):
        calls = _calls(tmp_path, system)
        assert set(calls.values()) == {1}, (system, calls)
        assert any('"method": "erase"' in line for line in calls), (system, calls)
    # the erasure is complete in the systems' own data, and the look-alike untouched
    with sqlite3.connect(tmp_path / "crm.db") as db:
        emails = {e for (e,) in db.execute("SELECT email FROM customers")}
    assert TARO["email"] not in emails and LOOK_ALIKE[2] in emails
    with sqlite3.connect(tmp_path / "orders.db") as db:
        rows = dict(db.execute("SELECT order_id, customer_id FROM orders"))
    assert "C-1001" not in rows.values() and rows["O-99"] == "C-1099"
