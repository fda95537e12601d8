"""What the ledger's operations return: typed outcomes and plans."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.ledger.models import Request, Task
from streams.records import RequestEvent, TaskStatus


class Action(StrEnum):
    """What an audit row records (``AuditEntry.action``)."""

    # intake and the rules
    RECEIVED = "received"
    HOLD = "hold"
    STILL_HELD = "still_held"
    RELEASED = "released"
    REFUSE = "refuse"
    CLOCK_RESUMED = "clock_resumed"
    DUPLICATE_IGNORED = "duplicate_ignored"
    IDENTIFIERS_DISCOVERED = "identifiers_discovered"
    # fan-out and aggregation
    FANNED_OUT = "fanned_out"
    WAVE_PLANNED = "wave_planned"
    TASK_OK = "task_ok"
    TASK_FAILED = "task_failed"
    LATE_RESULT = "late_result"
    TASKS_TIMED_OUT = "tasks_timed_out"
    TIMEOUT_RENEWED = "timeout_renewed"  # tasks sent again after it, with no new wave
    COMPLETED = "completed"
    NOTIFIED = "notified"
    # operators' decisions and redrives
    EXTENDED = "extended"
    REFUSED = "refused"
    REFUSED_IN_PART = "refused_in_part"
    PARKED = "parked"
    UNPARKED = "unparked"
    DEAD_LETTERED = "dead_lettered"
    REDRIVEN = "redriven"
    RECONCILED = "reconciled"
    REJECTED = "rejected"
    # provision records, keys and the trail itself
    PROVISION_RECORDED = "provision_recorded"
    PROVISION_REFUSED = "provision_refused"
    PROVISION_STOPPED = "provision_stopped"
    RECORDS_PURGED = "records_purged"
    KEYS_SHREDDED = "keys_shredded"
    AUDIT_PURGED = "audit_purged"


class Admitted(StrEnum):
    """What became of a request event at intake."""

    NEW = "new"
    RELEASED = "released"  # a held request's re-send with the evidence it waited for
    STILL_HELD = "still_held"
    DUPLICATE = "duplicate"
    REDELIVERED = "redelivered"  # a message admitted before, read again: nothing recorded
    CONFLICT = "conflict"  # a re-send that would change more than release evidence
    NOT_PERMITTED = "not_permitted"  # a release by a key that may not release


class Unparked(StrEnum):
    """What became of an operator's release of a parked request."""

    RELEASED = "released"
    UNKNOWN_REQUEST = "unknown_request"
    NOT_PARKED = "not_parked"


class Decided(StrEnum):
    """What became of an operator's decision: applied, or why not."""

    EXTENDED = "extended"
    REFUSED = "refused"
    REFUSED_IN_PART = "refused_in_part"
    UNKNOWN_REQUEST = "unknown_request"
    REQUEST_CLOSED = "request_closed"
    EXTENSION_NOT_AVAILABLE = "extension_not_available"
    ALREADY_EXTENDED = "already_extended"
    ALREADY_FANNED_OUT = "already_fanned_out"
    FIELDS_NOT_REFUSABLE = "fields_not_refusable"
    REDELIVERED = "redelivered"  # the decision's message, applied before, read again


@dataclass(frozen=True)
class Arrival:
    """A valid request event and the rules' decision on it, to admit (``Intake.admit``:
    what its arguments mean)."""

    event: RequestEvent
    action: str
    reason: str | None
    deadline: datetime
    clock_pauses: bool = False
    key_id: str | None = None
    may_release: bool = True
    #: Its message (its digest and where it was read: ``message_id``), when known: one
    #: read again is not admitted again.
    message: str | None = None


@dataclass(frozen=True)
class Admission:
    """What intake should do after recording an event."""

    outcome: Admitted
    status: str
    hold_reason: str | None = None
    #: For a ``conflict``: the fields the re-send would change, by name only.
    conflicts: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskPlan:
    task_id: str
    system: str
    kind: str
    wave: int
    status: TaskStatus
    reason: str | None = None
    #: A result known when planning (a refused system is never asked).
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class Completion:
    """A request to complete with its response (``Tasks.complete_many``). With
    ``refused_parts``, only if the request still has that many refused parts."""

    request_id: str
    status: str
    body: dict[str, Any]
    latency_ms: int
    refused_parts: int | None = None


@dataclass(frozen=True)
class Recorded:
    """A result just recorded: whether it was the task's first, and the request now."""

    first: bool
    request: Request | None
    tasks: list[Task]
