"""Every event that crosses the queue boundary, as typed records.

One module defines them all. Each record is keyed by ``request_id`` on the
wire, so a request's events stay on one partition. ``RequestEvent`` is the
public, versioned contract for privacy-operations teams; its JSON Schema is
published in ``schemas/request-event.v1.json`` (``dsr schema`` regenerates it).

The other records are internal to the pipeline, but their schemas are
published too, because connector runners and response consumers may be
written by other teams.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

SCHEMA_VERSION = "1.0"

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=512)]
#: An identifier's type: ``email``, ``customer_id``...
IdentifierName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Text = Annotated[str, StringConstraints(max_length=4096)]
RequestId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Kind(StrEnum):
    PURPOSE_NOTIFICATION = "purpose_notification"
    DISCLOSURE = "disclosure"
    THIRD_PARTY_RECORDS = "third_party_records"
    CORRECTION = "correction"
    SUSPENSION = "suspension"
    ERASURE = "erasure"
    THIRD_PARTY_STOP = "third_party_stop"


#: Kinds that change data in the systems, and so never run on an unverified identity.
DESTRUCTIVE_KINDS = frozenset(
    {Kind.CORRECTION, Kind.SUSPENSION, Kind.ERASURE, Kind.THIRD_PARTY_STOP}
)
#: Kinds with a connector operation of their own. ``purpose_notification`` has none: it
#: asks each system, with a disclosure, only whether it holds the principal's data, and
#: the purposes of the systems that do come from the data map.
FAN_OUT_KINDS = frozenset(Kind) - {Kind.PURPOSE_NOTIFICATION}
#: The detail a purpose-notification or lookup task reports instead of records.
HOLDS_DATA = "holds_data"
#: The operation name in a lookup task's id (``Task.make_lookup_id``).
LOOKUP = "lookup"


def answered_by(kind: Kind) -> tuple[Kind, ...]:
    """The connector operations that can answer a task of ``kind``, the first a connector
    supports doing it. A purpose notification asks whether a system holds data about the
    principal: its records, or failing those its provision and receipt records, whose
    purposes (partner sharing) the principal is told too."""
    if kind is Kind.PURPOSE_NOTIFICATION:
        return (Kind.DISCLOSURE, Kind.THIRD_PARTY_RECORDS)
    return (kind,)


#: Kinds whose response carries a package of the principal's data.
PACKAGE_KINDS = frozenset({Kind.DISCLOSURE, Kind.THIRD_PARTY_RECORDS})


class Regulation(StrEnum):
    APPI = "appi"
    GDPR = "gdpr"
    CCPA = "ccpa"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Subject(_Strict):
    """Who the request is about. Identifiers are personal data: never log them."""

    identifiers: dict[IdentifierName, Identifier] = Field(
        min_length=1,
        max_length=32,
        description='How internal systems know the principal, e.g. {"email": "a@example.com"}.',
    )
    name: Text | None = Field(
        default=None,
        description="The principal's name, for the letter's addressee. Personal data: "
        "sealed with the request like the identifiers, never sent to connectors.",
    )


class Requester(_Strict):
    """Who asks. ``type`` and ``name`` never change under a ``request_id``."""

    type: Literal["self", "statutory_agent", "appointed_agent"] = "self"
    name: Text | None = None
    authority_reference: Text | None = Field(
        default=None,
        description="Power of attorney (appointed agent) or proof of legal "
        "representation (statutory agent), as a document reference. Release evidence: "
        "a re-send of a held request may add it.",
    )


class Verification(_Strict):
    """How the principal's identity was checked: release evidence, which a re-send of a
    held request may change."""

    status: Literal["verified", "pending", "failed"]
    method: Text | None = Field(default=None, examples=["drivers_licence", "mail_otp"])
    reference: Text | None = None


class Delivery(_Strict):
    method: Literal["electronic", "written"] = "electronic"
    address: Text | None = Field(default=None, description="Where the response goes.")


class Fee(_Strict):
    required: bool = False
    paid: bool = Field(default=False, description="Release evidence, with payment_reference.")
    amount_jpy: int | None = Field(default=None, ge=0)
    payment_reference: Text | None = Field(
        default=None,
        description="The payment's receipt or transaction reference; kept in the audit "
        "trail of the admission or release it allows.",
    )


class Change(_Strict):
    field: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    value: str | int | float | bool | None


class Correction(_Strict):
    changes: list[Change] = Field(min_length=1, max_length=256)


Ground = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class RequestEvent(_Strict):
    """A data-subject rights request, as submitted by privacy operations."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="DSR request event",
        json_schema_extra={"$id": "https://dsr-pipeline.dev/schemas/request-event.v1.json"},
    )

    schema_version: Literal["1.0"]
    request_id: RequestId = Field(
        description="The caller's idempotency key, naming one request for good. A re-send "
        "identical to the request is a duplicate. A re-send of a held request releases it "
        "when it differs only in release evidence: verification (status, method, "
        "reference), fee.paid, fee.payment_reference and requester.authority_reference. "
        "Any other difference (subject, kind, regulation, requester, delivery, "
        "received_at...), or any difference once the request is no longer held, is "
        "rejected with request_id_conflict and changes nothing."
    )
    kind: Kind
    regulation: Regulation
    received_at: AwareDatetime = Field(
        description="RFC 3339, when the request reached the business."
    )
    subject: Subject
    requester: Requester = Requester()
    verification: Verification
    delivery: Delivery = Delivery()
    fee: Fee = Fee()
    correction: Correction | None = None
    grounds: list[Ground] | None = Field(
        default=None,
        max_length=16,
        description="Legal grounds invoked, for suspension, erasure and third_party_stop.",
    )
    note: Text | None = None

    @model_validator(mode="after")
    def _kind_specific_fields(self) -> Self:
        if self.kind is Kind.CORRECTION and self.correction is None:
            raise ValueError("a correction request needs correction.changes")
        if self.kind is not Kind.CORRECTION and self.correction is not None:
            raise ValueError("correction.changes is only allowed on correction requests")
        needs_grounds = {Kind.SUSPENSION, Kind.ERASURE, Kind.THIRD_PARTY_STOP}
        if self.kind in needs_grounds and not self.grounds:
            raise ValueError(f"a {self.kind} request needs at least one ground")
        return self


class TaskStatus(StrEnum):
    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"
    TIMED_OUT = "timed_out"
    #: Withheld by a data-map rule before the system was asked (e.g. Art. 33(2)(iii)).
    REFUSED = "refused"


class Reason(_Strict):
    """Why a response, or one system's part of it, is not what was asked (APPI Art. 36)."""

    code: str
    message: str
    system: str | None = None
    field: str | None = Field(default=None, description="The field of a correction it concerns.")
    message_ja: str | None = Field(
        default=None, description="The message in Japanese, where its author gave one."
    )


class Task(_Strict):
    """One system's share of a request, sent to ``dsr.tasks.<system>``."""

    request_id: RequestId
    task_id: str = Field(description="Idempotency key: request, system, operation and wave.")
    system: str
    kind: Kind
    wave: int = 0
    identifiers: dict[str, str] = Field(description="The identifiers the request carries.")
    identities: list[dict[str, str]] = Field(
        default_factory=list,
        description="The identity units to look the principal up by, one connector call "
        "each: the request's own identifiers first, then those the resolve phase found, "
        "each unit whole (identifiers that belong together). Only units that supply one "
        "of the system's keys; empty: look up by ``identifiers``.",
    )
    lookup: bool = Field(
        default=False,
        description="A read-only lookup of the resolve phase: the runner reads the system "
        "per unit and reports only the identities found, never the records.",
    )
    changes: list[Change] = []
    grounds: list[str] = []
    dry_run: bool = False
    attempt: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    not_after: datetime | None = Field(
        default=None,
        description="The request's timeout when the task was sent: a task still queued "
        "after it belongs to a request already answered without it, so the runner skips "
        "it, counts it and dead-letters it unrun (``dsr dlq redrive`` runs it). None: "
        "run whenever it arrives.",
    )
    sealed: str | None = Field(
        default=None,
        description="identifiers, identities and changes, sealed under the request's data "
        "key (base64); those fields are then empty on the wire",
    )

    @staticmethod
    def make_id(request_id: str, system: str, kind: str, wave: int = 0) -> str:
        return f"{request_id}:{system}:{kind}:{wave}"

    @staticmethod
    def make_lookup_id(request_id: str, system: str, wave: int) -> str:
        return f"{request_id}:{system}:{LOOKUP}:{wave}"

    @staticmethod
    def is_lookup_id(task_id: str) -> bool:
        """Whether ``task_id`` names a lookup task (``make_lookup_id``)."""
        parts = task_id.rsplit(":", 2)
        return len(parts) == 3 and parts[1] == LOOKUP


class TaskResult(_Strict):
    """What a connector runner reports for one task, sent to ``dsr.results``."""

    request_id: RequestId
    task_id: str
    system: str
    kind: Kind
    status: Literal["ok", "failed"]
    records: list[dict[str, Any]] = Field(default_factory=list)
    changed: int = 0
    fields: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    identities: list[dict[str, str]] = Field(
        default_factory=list,
        description="The principal's identities the system holds, one unit per record "
        "(identifiers that belong together); they extend the request's identity graph.",
    )
    refusal: Reason | None = Field(
        default=None,
        description="Set when the system withholds some or all of what was asked, on a "
        "ground the principal is told (partial refusal); the records are what may be shown.",
    )
    error: str | None = None
    error_code: str | None = None
    retriable: bool = False
    attempts: int = 1
    started_at: datetime
    finished_at: datetime = Field(default_factory=utcnow)
    sealed: str | None = Field(
        default=None,
        description="records, identities and details, sealed under the "
        "request's data key (base64); those fields are then empty on the wire",
    )
    claim: str | None = Field(
        default=None,
        pattern=r"^claims/[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}/[0-9a-f]{64}$",
        description="A sealed value too large for one message, kept in the package store "
        "under this key instead (claim check); ``sealed`` is then empty",
    )


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


class DecisionEvent(_Strict):
    """An operator's decision on an open request, sent to ``dsr.decisions``, signed as
    request events are.

    - ``extension`` moves the deadline by the regulation's one extension (GDPR two
      months, CCPA 45 days; the APPI has none) and is told to the principal.
    - ``refusal`` refuses a request not yet fanned out (held, or waiting for fan-out) on
      one of its regulation's grounds, e.g. the APPI's Art. 33(2) grounds; the response
      says so, with the ground's text.
    - a ``refusal`` naming a ``system`` or ``fields`` refuses that part only
      (``RefusedPart``): any time before the response for a disclosure, before fan-out
      for other kinds. The response is then ``partially_completed`` with that reason.
    """

    schema_version: Literal["1.0"] = "1.0"
    request_id: RequestId
    decision: Literal["extension", "refusal"]
    ground: str | None = Field(
        default=None, description="For a refusal: a refusal code of the request's regulation."
    )
    reason: str = Field(min_length=1, max_length=2000, description="Told to the principal.")
    decided_by: str = Field(
        min_length=1,
        max_length=128,
        description="Kept for compatibility and ignored when signatures are required: the "
        "decision is recorded as the signing key's owner (its keyring entry).",
    )

    system: str | None = Field(
        default=None,
        max_length=64,
        description="For a refusal in part: the system whose part is refused (withheld, "
        "or never asked); the rest of the request goes on.",
    )
    fields: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(
        default=[],
        max_length=64,
        description="For a refusal in part of a disclosure: the fields withheld, in "
        "``system`` or in every system.",
    )

    @model_validator(mode="after")
    def _refusal_has_a_ground(self) -> DecisionEvent:
        if (self.decision == "refusal") != (self.ground is not None):
            raise ValueError("a refusal, and only a refusal, names its ground")
        if self.decision != "refusal" and (self.system or self.fields):
            raise ValueError("only a refusal may name a system or fields")
        return self

    @property
    def in_part(self) -> bool:
        return bool(self.system or self.fields)


class RefusedPart(_Strict):
    """A part of a request an operator refused (``DecisionEvent`` with a system or
    fields), kept on the request: the system is not asked, or what it found is withheld
    (those fields only, with ``fields``), with the ground and the reason told."""

    system: str | None = None
    fields: list[str] = []
    ground: str
    reason: str
    decided_by: str

    def covers(self, system: str) -> bool:
        return self.system is None or self.system == system

    def as_reason(self, system: str, field: str | None = None) -> Reason:
        return Reason(code=self.ground, message=self.reason, system=system, field=field)


class RejectedEvent(_Strict):
    """A malformed or refused-at-the-door event, sent to ``dsr.requests.rejected``.

    Provision records refused by the provision ledger come here too, with
    ``provision_stopped`` or ``record_id_conflict``. A request event that would change a
    request already recorded under its ``request_id`` comes with ``request_id_conflict``.
    An event whose key may not send it (``services.signing.Permissions``) comes with
    ``not_permitted``; one signed too long ago, or without ``dsr-signed-at``, with
    ``stale_signature``; a request holding a My Number, with ``my_number_not_accepted``
    (and nothing of it kept, not even sealed)."""

    reason_code: Literal[
        "invalid_json",
        "invalid_encoding",
        "schema_violation",
        "too_large",
        "too_deep",
        "unsigned",
        "unknown_key",
        "bad_signature",
        "unknown_request",
        "request_closed",
        "extension_not_available",
        "already_extended",
        "unknown_ground",
        "already_fanned_out",
        "provision_stopped",
        "record_id_conflict",
        "cannot_open",
        "request_id_conflict",
        "not_permitted",
        "stale_signature",
        "my_number_not_accepted",
        "unknown_system",
        "fields_not_refusable",
    ]
    errors: list[dict[str, Any]] = Field(
        default=[],
        description="What failed. For request_id_conflict, one entry per field the re-send "
        "would change ({loc, msg}), named but never shown.",
    )
    request_id: str | None = None
    digest: str = Field(
        description="SHA-256 (hex) of the event's bytes as received: finds the event on "
        "dsr.requests without copying it."
    )
    sealed_raw: str | None = Field(
        default=None,
        description="The event's bytes sealed to the pipeline's public key (base64, "
        "services/crypto/public.py, name RejectedEvent), or None: not kept, as for "
        "request_id_conflict or a worker without keys. Never in clear.",
    )
    key_id: str | None = Field(
        default=None, description="The producer key that signed the event, when known."
    )
    rejected_at: datetime = Field(default_factory=utcnow)


def dump(record: BaseModel) -> bytes:
    return record.model_dump_json(exclude_none=False).encode()


#: What a notice tells the principal of.
NoticePurpose = Literal["response", "extension", "hold", "acknowledgement"]


class NoticeDue(_Strict):
    """On ``dsr.notices``: the principal is owed a notice of ``purpose`` about the request.
    The notices agent builds it from the ledger, so the message carries no personal data."""

    request_id: RequestId
    purpose: NoticePurpose


class DeadLetterEvent(_Strict):
    """On ``dsr.deadletter``: an event that could not be handled, or a task that used up
    its attempts. Nothing in clear names anyone: the original event, its headers and the
    error's detail travel only in ``sealed``, to the pipeline's public key (absent when
    the sender has no pipeline keys); ``digest`` is the original's SHA-256."""

    #: A worker stage (``intake``, ``fanout``, ``aggregate`` ...) or a task topic.
    source: str = Field(max_length=256)
    error: str = Field(max_length=2000)
    attempts: int = Field(ge=0)
    request_id: str | None = Field(default=None, max_length=128)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    task_id: str | None = Field(default=None, max_length=256)
    #: The task's error code (``retries_exhausted``, ``request_timed_out``) for a task.
    error_code: str | None = Field(default=None, max_length=64)
    sealed: str | None = None


PUBLISHED_SCHEMAS: dict[str, type[BaseModel]] = {
    "request-event.v1.json": RequestEvent,
    "task.v1.json": Task,
    "task-result.v1.json": TaskResult,
    "response-event.v1.json": ResponseEvent,
    "rejected-event.v1.json": RejectedEvent,
    "decision-event.v1.json": DecisionEvent,
    "notice-due.v1.json": NoticeDue,
    "dead-letter.v1.json": DeadLetterEvent,
}


def merge_units(
    known: Sequence[Mapping[str, str]], found: Iterable[Mapping[str, str]]
) -> list[dict[str, str]]:
    """``known`` with the identity units ``found`` adds, in the order first seen. A unit
    is kept whole; one that adds nothing (every identifier of it is already in one
    known unit) is left out, so the same person is never looked up twice."""
    merged = [dict(u) for u in known]
    for unit in found:
        items = {k: v for k, v in unit.items() if v}
        if items and not any(items.items() <= have.items() for have in merged):
            merged.append(items)
    return merged
