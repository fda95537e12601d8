"""A re-sent request event against the one the ledger holds: what a re-send may change.

A ``request_id`` names one request for good. A re-send under it is one of:

- **identical** to the request as the ledger holds it: a duplicate, changing nothing;
- a **release**, while the request is held: it differs only in release evidence
  (``RELEASE_EVIDENCE``), and the rules decide again on it;
- a **conflict** otherwise: another subject, kind, regulation, requester, delivery,
  date of arrival, grounds, correction or note, or any change at all once the request
  is no longer held. Intake rejects it (``request_id_conflict``) and nothing changes.

Differences are reported by field name only (``subject.identifiers`` as one field), so
that naming them never shows the subject's identifiers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from services.crypto.digests import subject_digests
from streams.records import RequestEvent

#: The fields a re-send of a held request may change: what releases it, nothing else.
RELEASE_EVIDENCE = frozenset(
    {
        "verification.status",
        "verification.method",
        "verification.reference",
        "fee.paid",
        "fee.payment_reference",
        "requester.authority_reference",
    }
)
#: Compared whole: which identifier changed is not told, only that the subject did.
_WHOLE = frozenset({"subject.identifiers"})
_MISSING = object()


def changed_fields(stored: RequestEvent, resent: RequestEvent) -> list[str]:
    """The dotted names of the fields ``resent`` changes, sorted. Times compare as
    instants, so ``+09:00`` and ``Z`` spellings of one moment are the same."""
    before, after = _leaves(stored.model_dump()), _leaves(resent.model_dump())
    return sorted(
        name
        for name in before.keys() | after.keys()
        if before.get(name, _MISSING) != after.get(name, _MISSING)
    )


def conflicts(changed: Collection[str], held: bool) -> list[str]:
    """The changes a re-send may not make: any but release evidence while the request is
    held, any at all once it is not."""
    return [name for name in changed if not held or name not in RELEASE_EVIDENCE]


def changed_by_digest(
    kind: str, regulation: str, digests: Collection[str], resent: RequestEvent
) -> list[str]:
    """``changed_fields`` when the stored event can no longer be opened (its key is
    shredded): only what the ledger keeps in clear compares, the kind, the regulation
    and the subject's digests (given and discovered, so a subject whose identifiers are
    all among them is the same)."""
    changed = [
        name
        for name, was, now in (
            ("kind", kind, resent.kind),
            ("regulation", regulation, resent.regulation),
        )
        if was != now
    ]
    if not subject_digests(resent.subject.identifiers) <= set(digests):
        changed.append("subject.identifiers")
    return sorted(changed)


def evidence(event: RequestEvent) -> dict[str, Any]:
    """What an admission or a release rests on, for its audit row."""
    return {
        "verification_status": event.verification.status,
        "verification_method": event.verification.method,
        "verification_reference": event.verification.reference,
        "fee_paid": event.fee.paid,
        "payment_reference": event.fee.payment_reference,
        "authority_reference": event.requester.authority_reference,
    }


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, Mapping) or prefix in _WHOLE:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        out.update(_leaves(inner, f"{prefix}.{key}" if prefix else str(key)))
    return out
