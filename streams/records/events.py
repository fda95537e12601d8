"""The pipeline's other events: decisions, rejections, acceptances, notices due and dead
letters, and
the published schemas of every record."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from streams.records.base import RequestId, _Strict, utcnow
from streams.records.requests import RequestEvent
from streams.records.responses import ResponseEvent
from streams.records.tasks import Reason, Task, TaskResult


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


#: What a notice tells the principal of.
NoticePurpose = Literal["response", "extension", "hold", "acknowledgement"]


class AcceptedVia(StrEnum):
    """Who sent a request to fan-out."""

    INTAKE = "intake"  # admitted, or released from a hold
    SWEEPER = "sweeper"  # accepted long ago, its message lost in a crash
    RECONCILE = "reconcile"  # ``dsr reconcile``, after the broker lost its topics
    RELEASE = "release"  # ``dsr park release``
    REDRIVE = "redrive"  # ``dsr dlq redrive`` of a task's dead letter


class Accepted(_Strict):
    """On ``dsr.accepted``: the request is admitted and may fan out now. It names the
    request only: fan-out reads the rest from the ledger."""

    request_id: RequestId
    via: AcceptedVia

    @classmethod
    def read(cls, raw: bytes) -> Accepted:
        """The message, or a bare request id as sent before this record existed (read as
        sent by intake); ``ValueError`` when it is neither."""
        if raw.lstrip().startswith(b"{"):
            return cls.model_validate_json(raw)
        return cls.model_validate({"request_id": raw.decode(), "via": AcceptedVia.INTAKE})


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
    "accepted.v1.json": Accepted,
    "dead-letter.v1.json": DeadLetterEvent,
}
