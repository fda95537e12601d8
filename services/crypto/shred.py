"""Crypto-shredding: destroy the data keys of requests past their package retention.

``plan`` says which keys would go; ``shred`` destroys them and writes one audit
row with the counts (none when nothing went). A key goes when its request
completed more than ``retention`` ago. Keys of open requests, of requests inside
retention and of requests the ledger does not know are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.crypto.keys import KeyProvider
from services.ledger import Action, Ledger
from streams.records import utcnow

__all__ = ["ShredPlan", "plan", "shred"]


@dataclass(frozen=True)
class ShredPlan:
    """Which data keys are past retention, and how many stay."""

    cutoff: datetime
    #: Request ids whose data keys go (completed before ``cutoff``).
    expired: list[str]
    #: Keys of open requests or of requests completed since ``cutoff``.
    retained: int
    #: Keys of requests not in the ledger: never destroyed here.
    unknown: int
    #: How many keys were destroyed; 0 for a dry run.
    destroyed: int = 0


def plan(
    ledger: Ledger, keys: KeyProvider, retention: timedelta, now: datetime | None = None
) -> ShredPlan:
    """What ``shred`` would destroy, changing nothing."""
    cutoff = (now or utcnow()) - retention
    held = [k.key_id for k in keys.list_keys()]
    completed = ledger.completion_times(held)
    expired = [rid for rid in held if (done := completed.get(rid)) is not None and done < cutoff]
    unknown = sum(rid not in completed for rid in held)
    return ShredPlan(cutoff, expired, len(held) - len(expired) - unknown, unknown)


def shred(
    ledger: Ledger,
    keys: KeyProvider,
    retention: timedelta,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ShredPlan:
    """Destroy the data keys of requests completed longer than ``retention`` ago."""
    todo = plan(ledger, keys, retention, now)
    if dry_run or not todo.expired:
        return todo
    destroyed = sum(keys.destroy(rid) for rid in todo.expired)
    if destroyed:
        ledger.audit(
            None,
            "keys",
            Action.KEYS_SHREDDED,
            count=destroyed,
            retained=todo.retained,
            retention_days=retention.days,
        )
    return ShredPlan(todo.cutoff, todo.expired, todo.retained, todo.unknown, destroyed)
