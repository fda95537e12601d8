"""The identity graph is resolved first and kept: a principal known by email only is
reached in a phone-keyed system through a CRM that cannot do the request's kind; an
identity source is erased after what it led to, so a dependant redriven later is still
reached; and a look-alike seeded next to the principal in every system is never touched.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.client import Watcher
from services.delivery.encrypted import open_package_storage
from services.delivery.package import read_package
from services.demo.scenario import event
from services.ledger import Ledger, as_utc
from services.settings import Settings
from services.stack import Stack
from streams import topics
from tests.integration.fixtures import joined_stack, settings_for

pytestmark = pytest.mark.integration

JIRO = {"email": "jiro@example.jp"}
# The look-alike: same name, same town, an email, phone and ids one step away.
DATAMAP = """
request_timeout_seconds: 60
subject_identifiers: [email]
systems:
  crm:
    connector: sql
    description: Customer master; knows the phone, cannot correct anything
    identifiers: [email]
    discovers: [customer_id, phone]
    erase_after: [loyalty]
    config:
      url: "sqlite:///${DSR_HOME}/g_crm.db"
      tables:
        - name: customers
          key: {column: email, identifier: email}
          identifiers: {customer_id: customer_id, phone: phone}
          columns: [customer_id, name, email, phone]
          erasure: {strategy: delete}
  loyalty:
    connector: sql
    description: Loyalty programme, keyed by phone only
    identifiers: [phone]
    config:
      url: "sqlite:///${DSR_HOME}/g_loyalty.db"
      tables:
        - name: members
          key: {column: phone, identifier: phone}
          columns: [phone, name, points]
          correctable: [name]
          erasure: {strategy: delete}
  orders:
    connector: "tests.integration.fakes:FailsToErase"
    identifiers: [customer_id]
    discovers: [order_id]
    config:
      url: "sqlite:///${DSR_HOME}/g_orders.db"
      erase_failures: ERASE_FAILURES
      tables:
        - name: orders
          key: {column: customer_id, identifier: customer_id}
          identifiers: {order_id: order_id}
          columns: [order_id, customer_id, address]
          erasure: {strategy: delete}
  shipping:
    connector: sql
    identifiers: [order_id]
    config:
      url: "sqlite:///${DSR_HOME}/g_shipping.db"
      tables:
        - name: shipments
          key: {column: order_id, identifier: order_id}
          columns: [order_id, recipient, address]
          erasure: {strategy: delete}
"""
SEEDS: dict[str, tuple[str, list[tuple[Any, ...]]]] = {
    "g_crm.db": (
        "customers (customer_id TEXT PRIMARY KEY, name TEXT, email TEXT, phone TEXT)",
        [
            ("C-1", "佐藤 次郎", "jiro@example.jp", "+81-70-5555-6666"),
            ("C-2", "佐藤 次郎", "jiro@example.com", "+81-70-5555-6667"),
        ],
    ),
    "g_loyalty.db": (
        "members (phone TEXT PRIMARY KEY, name TEXT, points INTEGER)",
        [("+81-70-5555-6666", "佐藤 次郎", 120), ("+81-70-5555-6667", "佐藤 次郎", 80)],
    ),
    "g_orders.db": (
        "orders (order_id TEXT PRIMARY KEY, customer_id TEXT, address TEXT)",
        [
            ("O-1", "C-1", "福岡県福岡市3-3"),
            ("O-2", "C-1", "福岡県福岡市3-3"),
            ("O-3", "C-2", "福岡県福岡市3-4"),
        ],
    ),
    "g_shipping.db": (
        "shipments (order_id TEXT PRIMARY KEY, recipient TEXT, address TEXT)",
        [("O-1", "佐藤 次郎", "福岡県福岡市3-3"), ("O-3", "佐藤 次郎", "福岡県福岡市3-4")],
    ),
}
TABLES = {"g_crm.db": "customers", "g_loyalty.db": "members", "g_orders.db": "orders"}
TABLES["g_shipping.db"] = "shipments"


def home(tmp_path: Path, erase_failures: int = 0) -> Settings:
    settings = settings_for(tmp_path, DATAMAP.replace("ERASE_FAILURES", str(erase_failures)))
    for name, (schema, rows) in SEEDS.items():
        with sqlite3.connect(tmp_path / name) as db:
            db.execute(f"CREATE TABLE {schema}")
            marks = ",".join("?" * len(rows[0]))
            db.executemany(f"INSERT INTO {TABLES[name]} VALUES ({marks})", rows)
    return settings


def rows(tmp_path: Path, name: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / name) as db:
        return sorted(db.execute(f"SELECT * FROM {TABLES[name]}").fetchall())


def look_alike_untouched(tmp_path: Path) -> None:
    for name, (_, seeded) in SEEDS.items():
        theirs = [r for r in seeded if not _jiros(r)]
        assert [r for r in rows(tmp_path, name) if not _jiros(r)] == sorted(theirs), name


def _jiros(row: tuple[Any, ...]) -> bool:
    return bool({"C-1", "jiro@example.jp", "+81-70-5555-6666", "O-1", "O-2"} & set(row))


def responses(stack: Stack, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Submit ``events`` one after the other; each one's response."""
    out = []
    watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
    submitter = stack.submitter()
    try:
        for e in events:
            submitter.submit_all([json.dumps(e).encode()])
            [(_, response)] = watcher.collect(lambda seen: len(seen) >= 1, timeout_s=90)
            out.append(response)
    finally:
        submitter.close()
        watcher.close()
    return out


def outcome(response: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {s["system"]: (s["status"], s["changed"]) for s in response["systems"]}


def test_an_email_only_correction_reaches_the_phone_keyed_system_through_the_crm(
    tmp_path: Path,
) -> None:
    settings = home(tmp_path)
    fix = event(
        "cg-1",
        "correction",
        JIRO,
        correction={"changes": [{"field": "name", "value": "佐藤 二郎"}]},
    )
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        [response] = responses(stack, [fix])

    assert dict(((p, n) for p, n, _ in rows(tmp_path, "g_loyalty.db")))["+81-70-5555-6666"] == (
        "佐藤 二郎"
    )
    look_alike_untouched(tmp_path)
    assert outcome(response)["loyalty"] == ("ok", 1)
    assert outcome(response)["crm"][0] == "not_applicable"  # it cannot correct: it resolved
    assert response["status"] == "completed"
    assert len(response["systems"]) == 4  # each system once: lookups are not actions


def test_a_dependant_redriven_after_its_identity_source_was_erased_is_still_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSR_TASK_ATTEMPTS", "2")
    settings = home(tmp_path, erase_failures=2)  # both attempts of the orders erasure fail
    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    monkeypatch.setenv("DSR_DATAMAP", str(settings.datamap_path))
    erase = event("eg-1", "erasure", JIRO, grounds=["no_longer_needed"])
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
        submitter = stack.submitter()
        submitter.submit_all([json.dumps(erase).encode()])
        [(_, first)] = watcher.collect(lambda seen: len(seen) >= 1, timeout_s=90)
        assert first["status"] == "partially_completed"
        assert outcome(first)["orders"][0] == "failed"
        # the CRM, which found the customer id, was erased after orders had finished
        assert [r[0] for r in rows(tmp_path, "g_crm.db")] == ["C-2"]
        assert [r[0] for r in rows(tmp_path, "g_orders.db")] == ["O-1", "O-2", "O-3"]

        result = CliRunner().invoke(app, ["dlq", "redrive", "--system", "orders"])
        assert result.exit_code == 0, result.output
        [(_, second)] = watcher.collect(lambda seen: len(seen) >= 1, timeout_s=90)
        submitter.close()
        watcher.close()

    assert second["revision"] == 2 and second["status"] == "completed"
    assert outcome(second) == {
        "crm": ("ok", 1),
        "loyalty": ("ok", 1),
        "orders": ("ok", 2),
        "shipping": ("ok", 1),
    }
    for name in TABLES:
        assert not [r for r in rows(tmp_path, name) if _jiros(r)], name
    look_alike_untouched(tmp_path)


def test_an_identity_source_erased_after_its_dependant_loads_and_keeps_the_order(
    tmp_path: Path,
) -> None:
    settings = home(tmp_path)  # crm: erase_after [loyalty], and loyalty is keyed by its phone
    erase = event("eo-1", "erasure", JIRO, grounds=["no_longer_needed"])
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        [response] = responses(stack, [erase])

    assert response["status"] == "completed"
    assert [r[0] for r in rows(tmp_path, "g_crm.db")] == ["C-2"]
    assert [r[0] for r in rows(tmp_path, "g_loyalty.db")] == ["+81-70-5555-6667"]
    look_alike_untouched(tmp_path)
    ledger = Ledger(settings.database_url)
    tasks = {t.system: t for t in ledger.tasks("eo-1") if ":lookup:" not in t.task_id}
    ledger.close()
    for later, earlier in (("crm", "loyalty"), ("crm", "orders"), ("orders", "shipping")):
        assert as_utc(tasks[later].created_at) >= as_utc(tasks[earlier].finished_at)


def test_a_disclosure_holds_the_principals_data_from_every_system_and_no_one_elses(
    tmp_path: Path,
) -> None:
    settings = home(tmp_path)
    ask = event("dg-1", "disclosure", JIRO)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        [response] = responses(stack, [ask])

    assert response["status"] == "completed"
    records = [(s["system"], s["records"]) for s in response["systems"]]  # lookups are not in it
    assert sorted(records) == [("crm", 1), ("loyalty", 1), ("orders", 2), ("shipping", 1)]
    package = read_package(open_package_storage(settings), "dg-1")
    text = json.dumps(json.loads(package["data.json"]), ensure_ascii=False)
    for theirs in ("jiro@example.com", "C-2", "+81-70-5555-6667", "O-3", "3-4"):
        assert theirs not in text, theirs
    for mine in ("jiro@example.jp", "C-1", "+81-70-5555-6666", "O-1", "O-2", "120"):
        assert mine in text, mine
    look_alike_untouched(tmp_path)
