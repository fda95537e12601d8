"""Ledger tables: requests, tasks, responses, rejected events, dead letters, the audit
trail, and the third-party-provision records (Arts. 29 and 30).

The ledger is the pipeline's source of truth. Kafka carries events; the ledger
decides what has happened, so that redelivered events change nothing twice.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class RequestStatus(StrEnum):
    HELD = "held"
    ACCEPTED = "accepted"
    FANNED_OUT = "fanned_out"
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially_completed"
    FAILED = "failed"
    REFUSED = "refused"
    #: Handling it raised: set aside, unanswered, until an operator releases it.
    PARKED = "parked"


#: Unanswered: a parked request is open too (its deadline runs), but nothing moves it.
OPEN_STATUSES = (
    RequestStatus.HELD,
    RequestStatus.ACCEPTED,
    RequestStatus.FANNED_OUT,
    RequestStatus.PARKED,
)
FINAL_STATUSES = tuple(s for s in RequestStatus if s not in OPEN_STATUSES)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Request(Base):
    __tablename__ = "requests"

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    regulation: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32), index=True)
    hold_reason: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime]
    deadline_at: Mapped[datetime]
    timeout_at: Mapped[datetime | None]
    #: The request event; sealed under the request's key when events are sealed.
    event: Mapped[dict[str, Any]]
    #: The identity units connectors found, in order (``[{name: value, ...}]``; before
    #: units, ``{name: [values]}``): the request's identity graph after its own
    #: identifiers. Sealed like ``event``.
    discovered: Mapped[dict[str, Any] | list[Any] | None] = mapped_column(JSON)
    #: SHA-256 digests of every identifier, given or discovered (``services.crypto.digests``):
    #: how the provision ledger finds the principal of an open request.
    subject_digests: Mapped[list[Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None] = mapped_column(index=True)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    #: 1 for the first response; a redrive that completes the request again sends the next.
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: Deadline extensions: [{reason, previous_deadline, deadline, at}], oldest first.
    extensions: Mapped[list[Any] | None] = mapped_column(JSON)
    #: Parts an operator refused (``streams.records.RefusedPart``), oldest first.
    refused_parts: Mapped[list[Any] | None] = mapped_column(JSON)
    #: The messages (``Arrival.message``) whose events it has taken, the latest
    #: ``MAX_DELIVERIES``: one read again (after a crash) is neither audited nor decided
    #: again.
    deliveries: Mapped[list[Any] | None] = mapped_column(JSON)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_request_status", "request_id", "status"),)

    task_id: Mapped[str] = mapped_column(String(320), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.request_id"))
    system: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    wave: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(index=True)


class Response(Base):
    """Completed responses; ``published_at`` makes this table the outbox, and
    ``lease_until`` says until when the worker sending one may still be sending it."""

    __tablename__ = "responses"

    request_id: Mapped[str] = mapped_column(ForeignKey("requests.request_id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None] = mapped_column(index=True)
    lease_until: Mapped[datetime | None]


class Rejected(Base):
    """A rejected event: its digest and why, never its content. ``place`` (where its
    message was read: ``topic/partition/offset``) tells its message read again (the same
    digest and place: one rejection) from a producer sending it again (another place)."""

    __tablename__ = "rejected_events"
    __table_args__ = (UniqueConstraint("raw_sha256", "place", name="uq_rejected_place"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    reason_code: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(128))
    errors: Mapped[list[Any]]
    raw_sha256: Mapped[str] = mapped_column(String(64))
    place: Mapped[str | None] = mapped_column(String(300))


class DeadLetter(Base):
    """A dead letter, kept here as well as on ``dsr.deadletter`` so that a broker restart
    loses none. Nothing personal is kept in clear: the original event (with its headers
    and the error's detail) is sealed under its request's data key, or not kept."""

    __tablename__ = "dead_letters"

    #: Stable for a redelivered copy: a digest of the dead letter's bytes and timestamp.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Where it goes back to: a system's task topic, or a worker stage's input topic.
    topic: Mapped[str] = mapped_column(String(255))
    #: The task topic, or the worker stage ("intake", "aggregate", ...) it came from.
    source: Mapped[str] = mapped_column(String(255))
    key: Mapped[str | None] = mapped_column(String(255))
    reason_code: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(128), index=True)
    task_id: Mapped[str | None] = mapped_column(String(320))
    attempts: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(index=True)
    redriven_at: Mapped[datetime | None]
    #: ``{"$sealed": ...}`` of ``{"original", "headers", "detail"}``, or None.
    sealed: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AuditEntry(Base):
    """Append-only: who did what, when and why. Never updated; deleted only by an
    operator's purge of entries older than 24 months, which is itself audited."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    request_id: Mapped[str | None] = mapped_column(String(128), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]


class ProvisionRecord(Base):
    """One Art. 29 (provision) or Art. 30 (receipt) record, with every item the APPI
    asks for. The principal is known only through ``ProvisionSubject`` digests."""

    __tablename__ = "provision_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(String(128), unique=True)
    #: SHA-256 of the event as first stored: a re-send must match it to be a duplicate.
    content_sha256: Mapped[str] = mapped_column(String(64))
    system: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16))
    flow: Mapped[str] = mapped_column(String(32))
    form: Mapped[str] = mapped_column(String(32))
    counterparty: Mapped[str] = mapped_column(String(512))
    counterparty_address: Mapped[str | None] = mapped_column(Text)
    counterparty_representative: Mapped[str | None] = mapped_column(Text)
    acquired_how: Mapped[str | None] = mapped_column(Text)
    items: Mapped[list[Any]]
    basis: Mapped[str | None] = mapped_column(String(16))
    consent: Mapped[str | None] = mapped_column(Text)
    provided_on: Mapped[date] = mapped_column(Date)
    last_provided_on: Mapped[date | None] = mapped_column(Date)
    ppc_publication: Mapped[str | None] = mapped_column(Text)
    #: Art. 28: {country, protection_system, recipient_measures}, or None.
    cross_border: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime]
    retain_until: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime]


class ProvisionSubject(Base):
    """The digest of one of a record's subject identifiers (SHA-256 of ``type:value``)."""

    __tablename__ = "provision_subjects"

    record_pk: Mapped[int] = mapped_column(
        ForeignKey("provision_records.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class ProvisionStop(Base):
    """A principal's ``third_party_stop`` for one recipient: later provisions are refused."""

    __tablename__ = "provision_stops"
    __table_args__ = (UniqueConstraint("subject_digest", "counterparty"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_digest: Mapped[str] = mapped_column(String(64), index=True)
    #: The recipient's name as ``counterparty_key`` folds it.
    counterparty: Mapped[str] = mapped_column(String(512))
    request_id: Mapped[str | None] = mapped_column(String(128))
    stopped_at: Mapped[datetime]
