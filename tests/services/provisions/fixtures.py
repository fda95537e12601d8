"""Provision record events and a migrated ledger, on SQLite and PostgreSQL (when reachable)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from services.ledger import Ledger
from services.provisions.records import ProvisionEvent
from services.provisions.store import ProvisionStore

ALICE = {"email": "alice@example.jp"}
BOB = {"email": "bob@example.jp"}


def digest(normalised: str) -> str:
    """A subject digest as a system computes it from the documented recipe."""
    return hashlib.sha256(normalised.encode()).hexdigest()


ALICE_DIGEST = digest("email:alice@example.jp")


def as_digests(body: dict[str, Any], *digests: str) -> dict[str, Any]:
    """``body`` with its subject sent as ``digests`` (Alice's by default)."""
    return {**body, "subject": {"digests": list(digests or [ALICE_DIGEST])}}


def provision(
    record_id: str = "p-1", subject: dict[str, str] | None = None, **over: Any
) -> dict[str, Any]:
    """A valid consent-based provision record of ``subject`` (Alice), as an event body."""
    body: dict[str, Any] = {
        "schema_version": "1.0",
        "record_id": record_id,
        "system": "partners",
        "direction": "provision",
        "subject": {"identifiers": subject or ALICE},
        "counterparty": {"name": "Acme Logistics K.K."},
        "items": ["name", "address"],
        "basis": "consent",
        "consent": "consent form CF-1",
        "provided_on": "2026-04-01",
    }
    body.update(over)
    return body


def receipt(
    record_id: str = "r-1", subject: dict[str, str] | None = None, **over: Any
) -> dict[str, Any]:
    """A valid opt-out receipt, with every Art. 30 item."""
    body = provision(
        record_id,
        subject,
        direction="receipt",
        counterparty={
            "name": "List Broker K.K.",
            "address": "東京都港区1-1",
            "representative": "代表取締役 田中",
        },
        acquired_how="from its own customers",
        basis="opt_out",
        consent=None,
        ppc_publication="PPC-2025-0001",
    )
    body.update(over)
    return body


def make(body: dict[str, Any]) -> ProvisionEvent:
    return ProvisionEvent.model_validate(body)


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    led = Ledger(database_url)
    led.migrate()
    yield led
    led.close()


@pytest.fixture
def store(ledger: Ledger) -> ProvisionStore:
    return ProvisionStore(ledger.engine)
