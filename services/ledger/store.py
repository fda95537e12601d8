"""The ledger's operations. Each is one short transaction, and each is idempotent.

Redelivered events are normal with Kafka (at-least-once), so every write here
either inserts what is missing or moves a row forward from an expected state.
The operations are grouped by job, one module each: ``intake``, ``tasks`` (fan-out,
results, completion), ``decisions``, ``deadletters``, ``outbox`` (and sweeps),
``audit`` and ``queries`` (read models); ``base`` holds what they share.
"""

from __future__ import annotations

from services.ledger.audit import Audit
from services.ledger.base import as_utc
from services.ledger.deadletters import DeadLetters
from services.ledger.decisions import Decisions
from services.ledger.intake import Intake
from services.ledger.outbox import Outbox
from services.ledger.queries import Queries
from services.ledger.reconnect import reconnecting
from services.ledger.tasks import Tasks
from services.ledger.types import (
    Admission,
    Admitted,
    Arrival,
    Completion,
    Decided,
    Recorded,
    TaskPlan,
)


@reconnecting
class Ledger(Intake, Tasks, Decisions, DeadLetters, Outbox, Audit, Queries):
    """The pipeline's record of requests, tasks, responses and the audit trail.

    With a ``sealer``, the personal data it keeps (the request event, the identifiers
    identity graph) is sealed under the request's data key, so it is shredded with it;
    the principal is found by ``requests.subject_digests`` only. Task results are
    kept as they arrive, sealed by the runner (``services.crypto.sealing``). An
    operation whose connection the database dropped runs again on a new one
    (``services.ledger.reconnect``).
    """


__all__ = [
    "Admission",
    "Admitted",
    "Arrival",
    "Completion",
    "Decided",
    "Ledger",
    "Recorded",
    "TaskPlan",
    "as_utc",
]
