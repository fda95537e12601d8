"""Crypto-shredding through the real worker: its leader-only timer destroys the data key
of a request past retention, and the package on disk can no longer be opened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from services.client import Watcher
from services.crypto import KeyDestroyed
from services.delivery.encrypted import open_package_storage
from services.demo.scenario import TARO, event
from services.ledger import Ledger
from services.ledger.models import AuditEntry
from streams import topics
from tests.integration.fixtures import joined_stack, settings_for, wait_for

pytestmark = pytest.mark.integration


def test_the_worker_shreds_the_keys_of_requests_past_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSR_PACKAGE_RETENTION_DAYS", "0")  # past retention once completed
    monkeypatch.setenv("DSR_KEY_SHRED_INTERVAL_S", "1")
    monkeypatch.delenv("DSR_ENCRYPT_PACKAGES", raising=False)
    settings = settings_for(tmp_path)
    ledger = Ledger(settings.database_url)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
        submitter = stack.submitter()
        submitter.submit_all([json.dumps(event("shred-1", "disclosure", TARO)).encode()])
        [(_, response)] = watcher.collect(lambda seen: len(seen) >= 1, timeout_s=60)
        rows = wait_for("the worker to destroy a data key", lambda: _shredded(ledger), 30)
        submitter.close()
        watcher.close()
    assert response["status"] == "completed"
    assert [r.detail["count"] for r in rows] == [1]
    files = [p for p in (tmp_path / "packages" / "responses" / "shred-1").rglob("*") if p.is_file()]
    assert files and not any(b"taro@example.jp" in p.read_bytes() for p in files)
    with pytest.raises(KeyDestroyed, match="shred-1"):
        open_package_storage(settings).get("responses/shred-1/data.json")
    ledger.close()


def _shredded(ledger: Ledger) -> list[AuditEntry]:
    with ledger.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == "keys_shredded")))
