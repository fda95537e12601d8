"""Crypto-shredding: past retention a request's data key goes, and its package with it."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from services.cli import app
from services.crypto import KeyDestroyed, LocalKeyProvider
from services.crypto.shred import plan, shred
from services.delivery.encrypted import open_package_storage
from services.delivery.package import build_package
from services.ledger import Ledger
from services.ledger.models import AuditEntry
from services.settings import Settings
from streams.records import Kind, utcnow
from tests.fixtures.ledger_rows import event
from tests.services.crypto.fixtures import completed
from tests.services.delivery.fixtures import make_response, make_result

PRINCIPAL = "taro.yamada@example.jp"
RETENTION = timedelta(days=90)


def shredded(ledger: Ledger) -> list[AuditEntry]:
    with ledger.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == "keys_shredded")))


def test_only_keys_of_requests_completed_before_retention_go(
    ledger: Ledger, keys: LocalKeyProvider
) -> None:
    now = utcnow()
    completed(ledger, "old", at=now - timedelta(days=91))
    completed(ledger, "recent", at=now - timedelta(days=89))
    ledger.admit(event("open"), "proceed", None, now + RETENTION)
    for rid in ("old", "recent", "open", "elsewhere"):
        keys.data_key(rid, create=True)

    dry = shred(ledger, keys, RETENTION, dry_run=True)
    assert (dry.expired, dry.retained, dry.unknown, dry.destroyed) == (["old"], 2, 1, 0)
    assert len(keys.list_keys()) == 4 and shredded(ledger) == []

    done = shred(ledger, keys, RETENTION)
    assert (done.expired, done.destroyed) == (["old"], 1)
    assert sorted(k.key_id for k in keys.list_keys()) == ["elsewhere", "open", "recent"]
    [row] = shredded(ledger)
    assert (row.actor, row.request_id, row.detail["count"]) == ("keys", None, 1)
    assert "old" not in str(row.detail)  # counts only, no request ids

    assert shred(ledger, keys, RETENTION).destroyed == 0
    assert len(shredded(ledger)) == 1  # nothing went: no second row
    assert plan(ledger, keys, RETENTION, now=now + timedelta(days=100)).expired == ["recent"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DSR_DATABASE_URL", "DSR_STORAGE_URL", "DSR_KEYS_DIR", "DSR_MASTER_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    monkeypatch.setenv("DSR_ENCRYPT_PACKAGES", "true")
    monkeypatch.setenv("DSR_PACKAGE_RETENTION_DAYS", "90")
    return tmp_path


def test_dsr_keys_shred_leaves_old_packages_on_disk_and_unreadable(home: Path) -> None:
    settings = Settings()
    ledger = Ledger(settings.database_url)
    ledger.migrate()
    storage = open_package_storage(settings)
    for rid, days_ago in (("old-1", 120), ("new-1", 1)):
        completed(ledger, rid, at=utcnow() - timedelta(days=days_ago))
        build_package(
            storage,
            response=make_response(Kind.DISCLOSURE, request_id=rid, systems={"crm": "ok"}),
            results=[make_result("crm", request_id=rid, records=[{"email": PRINCIPAL}])],
            method="electronic",
        )
    master = home / "keys" / "master.key"
    assert stat.S_IMODE(master.stat().st_mode) == 0o600

    dry = CliRunner().invoke(app, ["keys", "shred", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "1 data key(s)" in dry.output and "would be destroyed" in dry.output
    assert (home / "keys" / "data" / "old-1.key").exists()

    done = CliRunner().invoke(app, ["keys", "shred"])
    assert done.exit_code == 0, done.output
    assert "1 data key(s)" in done.output and "1 kept" in done.output
    assert [row.detail["count"] for row in shredded(ledger)] == [1]

    old = sorted((home / "packages" / "responses" / "old-1").rglob("*.*"))
    assert len(old) == 4  # data.json, summary.txt, manifest.json, the CSV: still there
    assert not any(PRINCIPAL.encode() in path.read_bytes() for path in old)
    with pytest.raises(KeyDestroyed, match="'old-1'"):
        storage.get("responses/old-1/data.json")
    refused = CliRunner().invoke(app, ["package", "open", "old-1"])
    assert refused.exit_code == 1
    assert "data key was destroyed" in refused.output and "90 days" in refused.output
    assert not (home / "opened" / "old-1").exists()

    opened = CliRunner().invoke(app, ["package", "open", "new-1"])
    assert opened.exit_code == 0, opened.output
    assert "data.json" in opened.output and "4 file(s) written" in opened.output
    out = home / "opened" / "new-1"
    assert PRINCIPAL in (out / "data.json").read_text()
    assert stat.S_IMODE((out / "data.json").stat().st_mode) == 0o600
    elsewhere = CliRunner().invoke(app, ["package", "open", "new-1", "--to", str(home / "x")])
    assert elsewhere.exit_code == 0 and (home / "x" / "manifest.json").exists()
    missing = CliRunner().invoke(app, ["package", "open", "nope"])
    assert missing.exit_code == 1 and "No package for nope" in missing.output
    ledger.close()
