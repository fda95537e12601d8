"""The ledger: requests, tasks, responses and the append-only audit trail."""

from services.ledger.models import FINAL_STATUSES, OPEN_STATUSES, RequestStatus
from services.ledger.store import (
    Admission,
    Admitted,
    Arrival,
    Completion,
    Decided,
    Ledger,
    TaskPlan,
    as_utc,
)
from services.ledger.types import Action, Unparked

__all__ = [
    "FINAL_STATUSES",
    "OPEN_STATUSES",
    "Action",
    "Admission",
    "Admitted",
    "Arrival",
    "Completion",
    "Decided",
    "Ledger",
    "RequestStatus",
    "TaskPlan",
    "Unparked",
    "as_utc",
]
