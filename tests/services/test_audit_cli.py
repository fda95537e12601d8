"""``dsr audit purge``: an operator's purge never reaches the last 24 months."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from services.cli import app
from services.ledger import Ledger
from services.ledger.models import AuditEntry


def test_purge_refuses_under_24_months_and_audits_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    monkeypatch.delenv("DSR_DATABASE_URL", raising=False)
    short = CliRunner().invoke(app, ["audit", "purge", "--older-than-months", "23", "--by", "k"])
    assert short.exit_code == 2
    assert "kept at least 24 months" in short.output
    done = CliRunner().invoke(app, ["audit", "purge", "--older-than-months", "24", "--by", "k"])
    assert done.exit_code == 0, done.output
    assert "0 audit entries purged" in done.output
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    with ledger.session() as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "audit_purged"))
        assert (entry.actor, entry.detail["count"]) == ("operator:k", 0)
    ledger.close()
