"""The provision record event: one Art. 29 (provision) or Art. 30 (receipt) record.

Systems that provide personal data to third parties, or receive it from them,
send one event per record to ``dsr.provisions`` (or hand a file of them to
``dsr provisions import``). Its JSON Schema is published as
``schemas/provision-event.v1.json``.

Only ``third_party`` flows are provisions the APPI asks a record of. The other
flows (entrustment, business succession, joint use, the Art. 27(1) exemptions)
may be sent too, so that a ``third_party_records`` response can say they exist
and why they are not listed as provisions (rule 16).

The ledger keeps the principal only as SHA-256 digests of their identifiers, so a
system can send those digests instead of the identifiers (``RecordSubject``) and name
nobody on the topic in clear. ``ProvisionEvent.digested`` gives that form: the ledger
tells re-sends apart by it, and the pipeline sends the records it refuses in it.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.crypto.digests import subject_digests
from streams.records import Identifier, IdentifierName, Text

Name = Annotated[str, StringConstraints(min_length=1, max_length=512, strip_whitespace=True)]
RecordId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
]
SystemName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_\-]{0,62}$")]
#: The SHA-256 of one normalised identifier (``services.crypto.digests``), in lowercase hex.
Digest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Direction(StrEnum):
    PROVISION = "provision"  # Art. 29: we gave the data to a third party
    RECEIPT = "receipt"  # Art. 30: a third party gave it to us


class Flow(StrEnum):
    THIRD_PARTY = "third_party"
    ENTRUSTMENT = "entrustment"
    BUSINESS_SUCCESSION = "business_succession"
    JOINT_USE = "joint_use"
    STATUTORY_EXEMPTION = "statutory_exemption"


class Basis(StrEnum):
    CONSENT = "consent"
    OPT_OUT = "opt_out"


class RecordForm(StrEnum):
    """How the record is kept; the Enforcement Rules set its retention from this."""

    PER_PROVISION = "per_provision"
    CONTRACT_SUBSTITUTE = "contract_substitute"
    CONTINUOUS = "continuous"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Counterparty(_Strict):
    """The recipient (provision) or the provider (receipt)."""

    name: Name
    address: Text | None = Field(default=None, description="Required for receipts (Art. 30).")
    representative: Text | None = Field(
        default=None, description="The representative of a corporation (receipts, Art. 30)."
    )


class CrossBorder(_Strict):
    """Provision to a recipient in a foreign country (Art. 28)."""

    country: Name
    protection_system: Text = Field(
        min_length=1, description="That country's system for protecting personal information."
    )
    recipient_measures: Text = Field(
        min_length=1, description="The protective measures the recipient takes."
    )


class RecordSubject(_Strict):
    """The principal, by ``identifiers`` or by their ``digests``: exactly one of the two.

    The ledger keeps only the digests, so sending them keeps the principal's identifiers
    off the topic. A digest is the SHA-256, in lowercase hex, of ``type:value`` with the
    type lowercased and the value trimmed (and lowercased for an email): for
    ``{"email": " Alice@Example.JP"}``, ``sha256("email:alice@example.jp")``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"oneOf": [{"required": ["identifiers"]}, {"required": ["digests"]}]},
    )

    identifiers: dict[IdentifierName, Identifier] | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description='How internal systems know the principal, e.g. {"email": "a@example.com"}; '
        "the ledger keeps only their digests.",
    )
    digests: list[Digest] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Instead of identifiers: the SHA-256 (lowercase hex) of each identifier "
        "as type:value, the type lowercased, the value trimmed, an email lowercased.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if (self.identifiers is None) == (self.digests is None):
            raise ValueError("give the subject's identifiers or their digests: exactly one of them")
        return self

    def digest_set(self) -> set[str]:
        """The digests the ledger keeps, whichever form the subject came in."""
        if self.digests is not None:
            return set(self.digests)
        return subject_digests(self.identifiers or {})


class ProvisionEvent(_Strict):
    """One provision or receipt record, as a system reports it."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="DSR provision record event",
        json_schema_extra={"$id": "https://dsr-pipeline.dev/schemas/provision-event.v1.json"},
    )

    schema_version: Literal["1.0"]
    record_id: RecordId = Field(description="The caller's idempotency key.")
    system: SystemName = Field(description="The system that made the record.")
    direction: Direction
    flow: Flow = Flow.THIRD_PARTY
    form: RecordForm = RecordForm.PER_PROVISION
    subject: RecordSubject = Field(
        description="The principal, by identifiers or their digests; stored only as digests."
    )
    counterparty: Counterparty
    acquired_how: Text | None = Field(
        default=None, description="Receipts: how the provider acquired the data (Art. 30)."
    )
    items: list[Name] = Field(min_length=1, max_length=256, description="The data items.")
    basis: Basis | None = Field(default=None, description="Required for third-party flows.")
    consent: Text | None = Field(
        default=None, description="The fact of the principal's consent, e.g. a form reference."
    )
    provided_on: date = Field(description="The date provided (or received).")
    last_provided_on: date | None = Field(
        default=None,
        description="The last provision a contract_substitute or continuous record covers.",
    )
    ppc_publication: Text | None = Field(
        default=None, description="The PPC's publication of the opt-out (opt-out receipts)."
    )
    cross_border: CrossBorder | None = None
    recorded_at: AwareDatetime | None = Field(
        default=None, description="When the record was made; default: when the ledger stores it."
    )
    note: Text | None = None

    @model_validator(mode="after")
    def _articles_29_and_30(self) -> Self:
        if self.last_provided_on is not None and self.last_provided_on < self.provided_on:
            raise ValueError("last_provided_on is before provided_on")
        if self.flow is not Flow.THIRD_PARTY:
            return self
        if self.basis is None:
            raise ValueError("a third-party record needs its basis: consent or opt_out")
        if self.basis is Basis.CONSENT and not self.consent:
            raise ValueError("a consent-based record needs the fact of consent")
        if self.direction is Direction.RECEIPT:
            if not self.counterparty.address:
                raise ValueError("a receipt needs the provider's address (Art. 30)")
            if not self.acquired_how:
                raise ValueError("a receipt needs how the provider acquired the data (Art. 30)")
            if self.basis is Basis.OPT_OUT and not self.ppc_publication:
                raise ValueError("an opt-out receipt needs the PPC publication reference")
        return self

    @property
    def last_provision(self) -> date:
        return self.last_provided_on or self.provided_on

    def digested(self) -> ProvisionEvent:
        """This record with its subject as digests (sorted, each once): the form to put on
        a topic, and the one the ledger deduplicates by."""
        subject = RecordSubject(digests=sorted(self.subject.digest_set()))
        return self.model_copy(update={"subject": subject})


def counterparty_key(name: str) -> str:
    """A counterparty name as stops compare it: whitespace collapsed, case folded."""
    return " ".join(name.split()).casefold()
