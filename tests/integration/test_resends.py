"""Re-sends through the real broker: a held disclosure re-sent for another person, by
another valid producer key, is refused and the principal's answer holds their data only;
the payment releases it, audited with its key and evidence; a differing re-send after
completion is refused too, never silently dropped."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from services.client import Submitter, Watcher
from services.crypto.sealing import Sealer
from services.delivery.encrypted import open_package_storage
from services.delivery.package import read_package
from services.demo.scenario import TARO, event
from services.ledger import Ledger
from services.signing import Keyring
from streams import topics
from tests.fixtures.ledger_reads import status_of
from tests.integration.fixtures import joined_stack, settings_for, wait_for

pytestmark = pytest.mark.integration

#: Taro's look-alike: the same name, an e-mail one letter away, an order of their own.
LOOK_ALIKE = {"email": "tar0@example.jp"}


def _seed_look_alike(home: Path) -> None:
    with sqlite3.connect(home / "crm.db") as db:
        db.execute(
            "INSERT INTO customers (customer_id, name, email, phone, address) VALUES (?,?,?,?,?)",
            ("C-1099", "山田 太郎", LOOK_ALIKE["email"], "090-9999-0000", "東京都千代田区1-9"),
        )
    with sqlite3.connect(home / "orders.db") as db:
        db.execute(
            "INSERT INTO orders VALUES (?,?,?,?,?,0)",
            ("O-99", "C-1099", "Copper kettle", 8800, "東京都千代田区1-9"),
        )


def _conflicts(seen: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [b for t, b in seen if t == topics.REJECTED]


def test_a_held_disclosure_answers_its_own_principal_whatever_is_re_sent(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    _seed_look_alike(tmp_path)
    keys = {"keys": {"ops": "a1" * 32, "crm-export": "b2" * 32}}  # two valid producers
    settings.signing_keys_path.write_text(json.dumps(keys))
    settings.signing_keys_path.chmod(0o600)
    unpaid = event("hold-1", "disclosure", TARO, fee={"required": True, "amount_jpy": 1000})
    paid = {**unpaid["fee"], "paid": True, "payment_reference": "PAY-2026-0042"}
    hijack = {**unpaid, "fee": paid, "subject": {"identifiers": LOOK_ALIKE}}
    ledger = Ledger(settings.database_url, sealer=Sealer.from_settings(settings))
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES, topics.REJECTED])
        ops = stack.submitter()
        other = Submitter(
            stack.bootstrap,
            Keyring.load(settings.signing_keys_path).signer("crm-export"),
            Sealer.from_settings(settings),
        )
        ops.submit_all([json.dumps(unpaid).encode()])
        wait_for("the disclosure held", lambda: status_of(ledger, "hold-1") == "held", 60)
        other.submit_all([json.dumps(hijack).encode()])
        seen = watcher.collect(lambda s: len(s) >= 1, timeout_s=60)
        [conflict] = _conflicts(seen)
        assert seen == [(topics.REJECTED, conflict)]  # refused, and nothing answered
        row = ledger.request("hold-1")
        assert row is not None and (row.status, row.hold_reason) == ("held", "fee_unpaid")

        ops.submit_all([json.dumps({**unpaid, "fee": paid}).encode()])  # the payment
        seen += watcher.collect(lambda s: len(s) >= 1, timeout_s=90)
        [(_, response)] = [(t, b) for t, b in seen if t == topics.RESPONSES]
        # after completion, a re-send with other evidence is refused, not dropped
        late = {**unpaid, "fee": {**paid, "payment_reference": "PAY-2026-9999"}}
        other.submit_all([json.dumps(late).encode()])
        seen += watcher.collect(lambda s: len(s) >= 1, timeout_s=60)
        ops.close()
        other.close()
        watcher.close()

    assert conflict["reason_code"] == "request_id_conflict"
    assert conflict["request_id"] == "hold-1" and conflict["sealed_raw"] is None
    assert [e["loc"] for e in conflict["errors"]] == ["subject.identifiers"]
    assert "tar0@" not in json.dumps(conflict) and "taro@" not in json.dumps(conflict)
    assert response["status"] == "completed"
    data = read_package(open_package_storage(settings), "hold-1")["data.json"].decode()
    assert "taro@example.jp" in data and "Green tea set" in data
    assert "tar0@example.jp" not in data and "Copper kettle" not in data
    assert "C-1099" not in data

    [_, late_conflict] = _conflicts(seen)
    assert late_conflict["reason_code"] == "request_id_conflict"
    assert [e["loc"] for e in late_conflict["errors"]] == ["fee.payment_reference"]
    trail = ledger.timeline("hold-1")
    [received] = [e.detail for e in trail if e.action == "received"]
    [released] = [e.detail for e in trail if e.action == "released"]
    rejected = [e.detail for e in trail if e.action == "rejected"]
    assert received["key_id"] == released["key_id"] == "ops"
    assert released["evidence"]["payment_reference"] == "PAY-2026-0042"
    assert released["evidence"]["verification_reference"] == "KYC-hold-1"
    assert [(r["reason_code"], r["key_id"]) for r in rejected] == [
        ("request_id_conflict", "crm-export")
    ] * 2
    assert ledger.request_event(ledger.request("hold-1")).subject.identifiers == TARO
    ledger.close()
