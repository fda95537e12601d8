"""Every event that crosses the queue boundary, as typed records.

One package defines them all, a module a family (``base``, ``requests``, ``tasks``,
``responses``, ``events``); import them from ``streams.records``. Each record is keyed
by ``request_id`` on the wire, so a request's events stay on one partition.
``RequestEvent`` is the public, versioned contract for privacy-operations teams; its
JSON Schema is published in ``schemas/request-event.v1.json`` (``dsr schema``
regenerates it).

The other records are internal to the pipeline, but their schemas are
published too, because connector runners and response consumers may be
written by other teams.
"""

from streams.records.base import (
    DESTRUCTIVE_KINDS,
    FAN_OUT_KINDS,
    HOLDS_DATA,
    LOOKUP,
    PACKAGE_KINDS,
    SCHEMA_VERSION,
    Identifier,
    IdentifierName,
    Kind,
    Regulation,
    RequestId,
    Text,
    _Strict,
    answered_by,
    dump,
    merge_units,
    utcnow,
)
from streams.records.events import (
    PUBLISHED_SCHEMAS,
    Accepted,
    AcceptedVia,
    DeadLetterEvent,
    DecisionEvent,
    NoticeDue,
    NoticePurpose,
    RefusedPart,
    RejectedEvent,
)
from streams.records.requests import (
    Change,
    Correction,
    Delivery,
    Fee,
    Ground,
    Requester,
    RequestEvent,
    Subject,
    Verification,
)
from streams.records.responses import (
    Extension,
    FieldOutcome,
    Outcome,
    ResponseEvent,
    ResponseStatus,
    SystemOutcome,
)
from streams.records.tasks import (
    CorrectionReport,
    FieldChange,
    Reason,
    Task,
    TaskResult,
    TaskStatus,
)

__all__ = [
    "DESTRUCTIVE_KINDS",
    "FAN_OUT_KINDS",
    "HOLDS_DATA",
    "LOOKUP",
    "PACKAGE_KINDS",
    "PUBLISHED_SCHEMAS",
    "SCHEMA_VERSION",
    "Accepted",
    "AcceptedVia",
    "Change",
    "Correction",
    "CorrectionReport",
    "DeadLetterEvent",
    "DecisionEvent",
    "Delivery",
    "Extension",
    "Fee",
    "FieldChange",
    "FieldOutcome",
    "Ground",
    "Identifier",
    "IdentifierName",
    "Kind",
    "NoticeDue",
    "NoticePurpose",
    "Outcome",
    "Reason",
    "RefusedPart",
    "Regulation",
    "RejectedEvent",
    "RequestEvent",
    "RequestId",
    "Requester",
    "ResponseEvent",
    "ResponseStatus",
    "Subject",
    "SystemOutcome",
    "Task",
    "TaskResult",
    "TaskStatus",
    "Text",
    "Verification",
    "_Strict",
    "answered_by",
    "dump",
    "merge_units",
    "utcnow",
]
