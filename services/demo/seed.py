"""Sample systems for the demo, in SQLite: a CRM, orders, shipping, a search index and a
provision log; and a few records in the pipeline's own provision ledger."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CUSTOMERS = [
    ("C-1001", "山田 太郎", "taro@example.jp", "090-1111-2222", "東京都千代田区1-1"),
    ("C-1002", "鈴木 花子", "hanako@example.jp", "080-3333-4444", "大阪府大阪市2-2"),
    ("C-1003", "佐藤 次郎", "jiro@example.jp", "070-5555-6666", "福岡県福岡市3-3"),
    ("C-1004", "Alice Martin", "alice@example.eu", "+33 6 12 34 56 78", "Paris"),
    ("C-1005", "Bob Lee", "bob@example.com", "+1 415 555 0100", "San Francisco"),
]
ORDERS = [
    ("O-1", "C-1001", "Green tea set", 3200, "東京都千代田区1-1"),
    ("O-2", "C-1001", "Tea cups", 1800, "東京都千代田区1-1"),
    ("O-3", "C-1002", "Rice cooker", 12800, "大阪府大阪市2-2"),
    ("O-4", "C-1003", "Umbrella", 2500, "福岡県福岡市3-3"),
    ("O-5", "C-1005", "Headphones", 9800, "San Francisco"),
]
SHIPMENTS = [
    ("O-1", "Yamato", "YT-0001", "山田 太郎", "東京都千代田区1-1"),
    ("O-3", "Sagawa", "SG-0003", "鈴木 花子", "大阪府大阪市2-2"),
    ("O-4", "Yamato", "YT-0004", "佐藤 次郎", "福岡県福岡市3-3"),
    ("O-5", "UPS", "1Z-0005", "Bob Lee", "San Francisco"),
]
PROVISIONS = [
    ("taro@example.jp", "2026-04-01", "Example Logistics K.K.", "name,address", "consent"),
    ("taro@example.jp", "2026-06-15", "Example Insurance Co.", "name,email", "consent"),
    ("hanako@example.jp", "2026-05-20", "Example Logistics K.K.", "name,address", "consent"),
]


#: The sample systems' database files, in the home ``seed`` writes to.
SAMPLE_DATABASES = ("crm.db", "orders.db", "shipping.db", "search.db", "partners.db")


def seed(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    _write(
        home / "crm.db",
        """
        CREATE TABLE customers (customer_id TEXT PRIMARY KEY, name TEXT, email TEXT UNIQUE,
            phone TEXT, address TEXT, processing_suspended BOOLEAN NOT NULL DEFAULT 0)""",
        "INSERT INTO customers (customer_id, name, email, phone, address) VALUES (?,?,?,?,?)",
        CUSTOMERS,
    )
    _write(
        home / "orders.db",
        """
        CREATE TABLE orders (order_id TEXT PRIMARY KEY, customer_id TEXT, item TEXT,
            amount_jpy INTEGER, shipping_address TEXT,
            processing_suspended BOOLEAN NOT NULL DEFAULT 0)""",
        "INSERT INTO orders VALUES (?,?,?,?,?,0)",
        ORDERS,
    )
    _write(
        home / "shipping.db",
        """
        CREATE TABLE shipments (order_id TEXT PRIMARY KEY, carrier TEXT, tracking_no TEXT,
            recipient_name TEXT, delivery_address TEXT,
            processing_suspended BOOLEAN NOT NULL DEFAULT 0)""",
        "INSERT INTO shipments VALUES (?,?,?,?,?,0)",
        SHIPMENTS,
    )
    _write(
        home / "search.db",
        "CREATE TABLE profile_index (email TEXT PRIMARY KEY, display_name TEXT)",
        "INSERT INTO profile_index VALUES (?,?)",
        [(c[2], c[1]) for c in CUSTOMERS],
    )
    _write(
        home / "partners.db",
        """
        CREATE TABLE provisions (id INTEGER PRIMARY KEY, email TEXT, provided_on TEXT,
            recipient TEXT, items TEXT, basis TEXT, stopped BOOLEAN NOT NULL DEFAULT 0)""",
        "INSERT INTO provisions (email, provided_on, recipient, items, basis) VALUES (?,?,?,?,?)",
        PROVISIONS,
    )


def _write(path: Path, ddl: str, insert: str, rows: Sequence[tuple[object, ...]]) -> None:
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.execute(ddl)
        db.executemany(insert, rows)


TARO_ID = {"email": "taro@example.jp"}
HANAKO_ID = {"email": "hanako@example.jp"}
CONSENT = "Consent form CF-2026-04, signed at registration"


def _record(record_id: str, subject: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {
        "schema_version": "1.0",
        "record_id": record_id,
        "system": "partners",
        "direction": "provision",
        "subject": {"identifiers": subject},
        "items": ["name", "address"],
        "basis": "consent",
        "consent": CONSENT,
        **fields,
    }


#: Taro's records show each table of a third_party_records response: a provision, a
#: cross-border provision, an opt-out receipt, an entrustment (labelled out of scope)
#: and a record past its retention (never shown, purged on schedule).
LEDGER_RECORDS = [
    _record(
        "demo-prov-logistics",
        TARO_ID,
        counterparty={"name": "Example Logistics K.K."},
        provided_on="2026-04-01",
    ),
    _record(
        "demo-prov-analytics-us",
        TARO_ID,
        counterparty={"name": "Example Analytics Inc.", "address": "San Francisco, CA"},
        items=["email", "purchase history"],
        provided_on="2026-06-15",
        form="continuous",
        last_provided_on="2026-10-31",
        cross_border={
            "country": "United States",
            "protection_system": "No comprehensive federal privacy law; CCPA/CPRA in California",
            "recipient_measures": "Data processing agreement with APPI-equivalent safeguards",
        },
    ),
    _record(
        "demo-recv-broker",
        TARO_ID,
        direction="receipt",
        counterparty={
            "name": "Example List Broker K.K.",
            "address": "東京都港区4-4",
            "representative": "代表取締役 田中 一郎",
        },
        acquired_how="Collected from its own mail-order customers",
        items=["name", "address", "age bracket"],
        basis="opt_out",
        consent=None,
        ppc_publication="PPC opt-out notification 2025-0123",
        provided_on="2026-02-10",
    ),
    _record(
        "demo-entrust-callcentre",
        TARO_ID,
        counterparty={"name": "Example Call Centre K.K."},
        flow="entrustment",
        items=["name", "phone"],
        basis=None,
        consent=None,
        provided_on="2026-05-01",
    ),
    _record(
        "demo-prov-expired",
        TARO_ID,
        counterparty={"name": "Former Partner K.K."},
        provided_on="2021-03-01",
        recorded_at=datetime(2021, 3, 1, tzinfo=UTC).isoformat(),
    ),
    _record(
        "demo-prov-hanako",
        HANAKO_ID,
        counterparty={"name": "Example Logistics K.K."},
        provided_on="2026-05-20",
    ),
]


def seed_provisions(database_url: str) -> int:
    """Put the demo records in the provision ledger at ``database_url`` (migrating it
    first); seeding again adds nothing. Returns how many were new."""
    from services.ledger import Ledger
    from services.provisions.records import ProvisionEvent

    with Ledger(database_url) as ledger:
        ledger.migrate()
        store = ledger.provisions
        outcomes = [
            store.record(ProvisionEvent.model_validate(r), via="demo") for r in LEDGER_RECORDS
        ]
    return sum(o.status == "recorded" for o in outcomes)
