"""Sample systems for the demo, in SQLite: a CRM, orders, shipping, a search index and a
provision log."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

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
