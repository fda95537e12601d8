"""``ResponseEvent``: the answer to a request, with each system's outcome."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, model_validator

from streams.records.base import Kind, Regulation, RequestId, _Strict
from streams.records.tasks import Reason, TaskStatus


class ResponseStatus(StrEnum):
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially_completed"
    FAILED = "failed"
    REFUSED = "refused"


class Outcome(StrEnum):
    """What one system did with its part of a request, or with one field of a correction.

    The set is closed: every notice and letter sentence is written for one of these
    (``services.statements``), and ``services.responses.response_status`` derives the
    request's status from them.

    - ``done``: did what was asked, with an effect (records disclosed, data held for a
      purpose notification, a field corrected, records erased, suspended or stopped).
    - ``already_done``: the principal is known there (the identity lookup found them),
      but nothing needed doing: a correction's value was already the one asked for, the
      data was already erased or suspended.
    - ``no_data``: the system was asked and found nothing of the principal's.
    - ``not_applicable``: the system was not asked: it does not do this kind, it is out
      of scope, or no identifier it looks people up by was known.
    - ``not_supported``: the identity lookup found the principal there, but the system
      cannot do this kind: it holds the data and did not do what was asked (for a
      disclosure, suspension or erasure; for the other kinds such a system is
      ``not_applicable``: provision records and stops concern the systems that provide
      data, and a correction is judged field by field).
    - ``field_not_found``: (correction) the system holds no such field.
    - ``field_not_correctable``: (correction) the system holds the field but may not
      correct it.
    - ``refused``: withheld, in whole or in part, on a ground the principal is told.
    - ``failed``: the system could not do it (an error, or it never answered).
    - ``timed_out``: the system did not answer before the request's timeout.
    """

    DONE = "done"
    ALREADY_DONE = "already_done"
    NO_DATA = "no_data"
    NOT_APPLICABLE = "not_applicable"
    NOT_SUPPORTED = "not_supported"
    FIELD_NOT_FOUND = "field_not_found"
    FIELD_NOT_CORRECTABLE = "field_not_correctable"
    REFUSED = "refused"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


#: A task's status as an outcome when nothing more is known of it (a stored response
#: from before ``SystemOutcome.outcome`` existed): never more than the status says.
_STATUS_OUTCOMES = {
    TaskStatus.PENDING: Outcome.FAILED,
    TaskStatus.FAILED: Outcome.FAILED,
    TaskStatus.TIMED_OUT: Outcome.TIMED_OUT,
    TaskStatus.NOT_APPLICABLE: Outcome.NOT_APPLICABLE,
    TaskStatus.REFUSED: Outcome.REFUSED,
}


class SystemOutcome(_Strict):
    """One system's part of a response."""

    system: str
    status: TaskStatus = Field(description="The task's status (kept for compatibility).")
    outcome: Outcome = Field(
        description="What the system did: one of a closed set, see the ``Outcome`` enum. "
        "Absent in responses recorded before it existed; it is then derived from the "
        "status and counts, never claiming more than they do."
    )
    changed: int = 0
    kept: int = Field(
        default=0,
        ge=0,
        description="Of ``changed``, the records kept with the fields that identify the "
        "principal removed or pseudonymised (an erasure that does not delete).",
    )
    pending_purge: int = Field(
        default=0,
        ge=0,
        description="Of ``changed``, the records deleted from the system's current data "
        "whose earlier copies stay until a scheduled clean-up removes them.",
    )
    records: int = 0
    fields: list[str] = []
    error: str | None = None
    reason_code: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _outcome_from_status(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("outcome") is None and "status" in data:
            status = TaskStatus(data["status"])
            found = bool(data.get("records") or data.get("changed"))
            default = Outcome.DONE if found else Outcome.NO_DATA
            data = {**data, "outcome": _STATUS_OUTCOMES.get(status, default)}
        return data


class FieldOutcome(_Strict):
    """What became of one field of a correction, in the systems named."""

    field: str
    outcome: Outcome
    systems: list[str] = Field(
        default=[], description="The systems where the field had this outcome."
    )


class Extension(_Strict):
    reason: str
    previous_deadline: datetime
    deadline: datetime
    at: datetime


class ResponseEvent(_Strict):
    """The completed response, sent to ``dsr.responses`` and kept in the ledger."""

    schema_version: Literal["1.0"] = "1.0"
    request_id: RequestId
    kind: Kind
    regulation: Regulation
    status: ResponseStatus = Field(
        description="Derived from the outcomes (``services.responses.response_status``): "
        "``completed`` only when every system that holds the principal's data did what "
        "was asked (``done`` or ``already_done``) and, for a correction, every field was "
        "corrected or already held the value asked for; ``partially_completed`` when "
        "something was done and something was not; ``refused`` when nothing was done and "
        "what stood in the way were refusals; ``failed`` otherwise, including when no "
        "system in the data map can answer the request (reason ``no_applicable_system``)."
    )
    systems: list[SystemOutcome] = []
    corrections: list[FieldOutcome] = Field(
        default=[],
        description="For a correction: each requested field's outcome, one entry per "
        "field and outcome, naming the systems it applies to.",
    )
    reasons: list[Reason] = []
    received_at: datetime
    completed_at: datetime
    latency_ms: int = Field(description="From received_at to completion.")
    processing_ms: int = Field(description="From intake to completion: the pipeline's own time.")
    deadline: datetime
    package: str | None = Field(default=None, description="Where the disclosure package is.")
    letter: str | None = Field(default=None, description="Where the written letter is.")
    purposes: list[dict[str, Any]] | None = None
    extensions: list[Extension] = Field(
        default=[], description="Deadline extensions, with the reason given for each."
    )
    revision: int = Field(
        default=1,
        ge=1,
        description="1 for a request's first response. After an operator redrives a failed "
        "task (`dsr dlq redrive`), the request completes again with the next revision: "
        "consumers dedupe on (request_id, revision).",
    )
