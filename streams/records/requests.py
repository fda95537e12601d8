"""``RequestEvent``: the public, versioned contract for privacy-operations teams, and its
parts."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints, model_validator

from streams.records.base import (
    Identifier,
    IdentifierName,
    Kind,
    Regulation,
    RequestId,
    Text,
    _Strict,
)


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
            raise ValueError(f"a request for {self.kind.words} needs at least one ground")
        return self
