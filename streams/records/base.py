"""The contract's shared parts: kinds, regulations, identifier types, and the strict base
every record derives from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

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

    @property
    def words(self) -> str:
        """The kind in words, after "a request for": "erasure", "suspension of use"."""
        return _KIND_WORDS[self]


_KIND_WORDS = {
    Kind.PURPOSE_NOTIFICATION: "notification of the purposes of use",
    Kind.DISCLOSURE: "disclosure",
    Kind.THIRD_PARTY_RECORDS: "disclosure of third-party provision records",
    Kind.CORRECTION: "correction",
    Kind.SUSPENSION: "suspension of use",
    Kind.ERASURE: "erasure",
    Kind.THIRD_PARTY_STOP: "stopping third-party provision",
}


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


def dump(record: BaseModel) -> bytes:
    return record.model_dump_json(exclude_none=False).encode()


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
