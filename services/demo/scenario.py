"""The demo's requests, the status each must reach, and the data changes to check."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def event(request_id: str, kind: str, identifiers: dict[str, str], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema_version": "1.0",
        "request_id": request_id,
        "kind": kind,
        "regulation": "appi",
        "received_at": datetime.now(UTC).isoformat(),
        "subject": {"identifiers": identifiers},
        "requester": {"type": "self"},
        "verification": {
            "status": "verified",
            "method": "drivers_licence",
            "reference": f"KYC-{request_id}",
        },
        "delivery": {"method": "electronic"},
    }
    body.update(extra)
    return body


# Known by email only: the CRM resolves customer_id, orders resolve order ids.
TARO = {"email": "taro@example.jp"}
HANAKO = {"email": "hanako@example.jp"}
JIRO = {"email": "jiro@example.jp"}


@dataclass(frozen=True)
class Case:
    request_id: str
    kind: str
    expected: str
    events: list[dict[str, Any]]
    note: str = ""


def cases(run: str) -> list[Case]:
    rid = lambda name: f"demo-{run}-{name}"  # noqa: E731
    held_fee = event(
        rid("records"),
        "third_party_records",
        TARO,
        fee={"required": True, "paid": False, "amount_jpy": 1000},
    )
    return [
        Case(
            rid("purposes"),
            "purpose_notification",
            "completed",
            [event(rid("purposes"), "purpose_notification", TARO)],
        ),
        Case(
            rid("disclosure"),
            "disclosure",
            "completed",
            [event(rid("disclosure"), "disclosure", TARO)],
            "electronic package",
        ),
        Case(
            rid("letter"),
            "disclosure",
            "completed",
            [
                event(
                    rid("letter"),
                    "disclosure",
                    HANAKO,
                    delivery={"method": "written", "address": "大阪府大阪市2-2"},
                )
            ],
            "written letter",
        ),
        Case(
            rid("records"),
            "third_party_records",
            "completed",
            [held_fee, {**held_fee, "fee": {"required": True, "paid": True, "amount_jpy": 1000}}],
            "held for the fee, released when paid",
        ),
        Case(
            rid("correction"),
            "correction",
            "completed",
            [
                event(
                    rid("correction"),
                    "correction",
                    HANAKO,
                    correction={"changes": [{"field": "phone", "value": "080-9999-0000"}]},
                )
            ],
        ),
        Case(
            rid("suspension"),
            "suspension",
            "completed",
            [event(rid("suspension"), "suspension", HANAKO, grounds=["used_beyond_purpose"])],
        ),
        Case(
            rid("erasure"),
            "erasure",
            "completed",
            [event(rid("erasure"), "erasure", JIRO, grounds=["no_longer_needed"])],
        ),
        Case(
            rid("stop"),
            "third_party_stop",
            "completed",
            [event(rid("stop"), "third_party_stop", TARO, grounds=["provided_without_consent"])],
        ),
        Case(
            rid("unverified"),
            "disclosure",
            "refused",
            [
                event(
                    rid("unverified"),
                    "disclosure",
                    TARO,
                    verification={"status": "failed", "method": "drivers_licence"},
                )
            ],
            "identity check failed",
        ),
    ]


MALFORMED = b'{"schema_version": "1.0", "request_id": "demo-malformed", "kind": "forget_me"}'


def _one(db: Path, sql: str, *args: Any) -> Any:
    with sqlite3.connect(db) as conn:
        row = conn.execute(sql, args).fetchone()
    return row[0] if row else None


def data_checks(home: Path) -> list[tuple[str, Callable[[], bool]]]:
    """Checks that the sample systems really changed, and only as they should."""
    crm, orders, partners = home / "crm.db", home / "orders.db", home / "partners.db"
    shipping, search = home / "shipping.db", home / "search.db"
    return [
        (
            "correction applied: Hanako's phone in crm",
            lambda: (
                _one(crm, "SELECT phone FROM customers WHERE email=?", "hanako@example.jp")
                == "080-9999-0000"
            ),
        ),
        (
            "suspension: Hanako flagged in crm",
            lambda: bool(
                _one(
                    crm,
                    "SELECT processing_suspended FROM customers WHERE email=?",
                    "hanako@example.jp",
                )
            ),
        ),
        (
            "erasure: Jiro deleted from crm",
            lambda: (
                _one(crm, "SELECT count(*) FROM customers WHERE email=?", "jiro@example.jp") == 0
            ),
        ),
        (
            "erasure: Jiro's orders anonymised",
            lambda: (
                _one(orders, "SELECT count(*) FROM orders WHERE customer_id=?", "C-1003") == 0
                and _one(orders, "SELECT shipping_address FROM orders WHERE order_id='O-4'")
                != "福岡県福岡市3-3"
            ),
        ),
        (
            "erasure reached shipping through identity resolution (email → customer → order)",
            lambda: (
                _one(shipping, "SELECT recipient_name FROM shipments WHERE order_id='O-4'")
                != "佐藤 次郎"
                and _one(shipping, "SELECT recipient_name FROM shipments WHERE order_id='O-3'")
                == "鈴木 花子"
            ),
        ),
        (
            "erasure: Jiro removed from the search index",
            lambda: (
                _one(search, "SELECT count(*) FROM profile_index WHERE email=?", "jiro@example.jp")
                == 0
            ),
        ),
        (
            "suspension reached Hanako's shipments",
            lambda: bool(
                _one(shipping, "SELECT processing_suspended FROM shipments WHERE order_id='O-3'")
            ),
        ),
        (
            "erasure left other customers alone",
            lambda: _one(crm, "SELECT count(*) FROM customers") == 4,
        ),
        (
            "third-party stop: Taro's provisions stopped",
            lambda: (
                _one(
                    partners, "SELECT min(stopped) FROM provisions WHERE email=?", "taro@example.jp"
                )
                == 1
                and _one(
                    partners,
                    "SELECT max(stopped) FROM provisions WHERE email=?",
                    "hanako@example.jp",
                )
                == 0
            ),
        ),
    ]


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


#: An erasure of Taro sent without a producer's signature: intake must reject it.
FORGED = encode(event("demo-forged", "erasure", TARO, grounds=["no_longer_needed"]))
