"""The ledger: requests, tasks, responses and the append-only audit trail."""

from services.ledger.models import FINAL_STATUSES, OPEN_STATUSES, RequestStatus
from services.ledger.store import Admission, Admitted, Decided, Ledger, TaskPlan, as_utc

__all__ = [
    "FINAL_STATUSES",
    "OPEN_STATUSES",
    "Admission",
    "Admitted",
    "Decided",
    "Ledger",
    "RequestStatus",
    "TaskPlan",
    "as_utc",
]
