"""A local key provider in a temporary directory, and finished requests in a ledger."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from services.crypto import LocalKeyProvider
from services.ledger import Ledger
from services.ledger.models import Request
from tests.fixtures.ledger_rows import event


@pytest.fixture
def keys(tmp_path: Path) -> LocalKeyProvider:
    return LocalKeyProvider(tmp_path / "keys")


def completed(ledger: Ledger, request_id: str, at: datetime | None = None) -> None:
    """Admit ``request_id`` and complete it, at ``at`` if given (else now)."""
    ledger.admit(event(request_id), "proceed", None, datetime(2030, 1, 1))
    assert ledger.complete(request_id, "completed", {}, latency_ms=1)
    if at is not None:
        with ledger.session() as s:
            s.execute(
                update(Request).where(Request.request_id == request_id).values(completed_at=at)
            )
