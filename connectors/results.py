"""What connector operations return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.records import CorrectionReport


@dataclass(frozen=True)
class Withheld:
    """Part or all of what was asked is withheld, on a ground the principal is told.

    ``code`` is machine-readable (e.g. ``violation_of_other_laws`` for APPI Art.
    33(2)(iii)); ``reason`` is the sentence the principal reads, and ``reason_ja`` the
    same in Japanese. A code that is a ground of refusal of the request's regulation is
    also worded by the regulation's own text.
    """

    code: str
    reason: str
    reason_ja: str | None = None


@dataclass(frozen=True)
class OperationResult:
    """What an operation found or changed.

    ``records`` are JSON-ready dicts of column to value, each with a ``_source``
    key naming the table or object it came from. ``details`` is the system's own account
    for operators (tables touched, objects tagged); the pipeline reads none of it. A
    correction reports what it did field by field in ``correction``.

    An erasure that keeps some records, with the fields that identify the subject
    removed or pseudonymised in place, counts them in ``kept`` as well as in
    ``changed``: the principal is told they were kept, not that they were erased.
    One that deletes records from the system's current data while earlier copies stay
    readable until a scheduled clean-up removes them (a compacted topic's older values,
    until its log cleaner runs) counts them in ``pending_purge`` as well: the principal
    is told so, not that nothing of them is left.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    changed: int = 0
    kept: int = 0
    pending_purge: int = 0
    fields: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    correction: CorrectionReport | None = None
    discovered_identifiers: dict[str, list[str]] = field(default_factory=dict)
    #: The subject's identities found, one unit per record: identifiers that belong
    #: together (``{"country_code": "81", "phone": "9012345678", "customer_id": "42"}``).
    #: A unit is never split or combined with another, so a composite key stays whole.
    identities: list[dict[str, str]] = field(default_factory=list)
    dry_run: bool = False
    #: Set when the records (or changes) are not all that was asked: a partial refusal.
    withheld: Withheld | None = None

    def units(self) -> list[dict[str, str]]:
        """Every identity found: ``identities``, then each value of the older
        ``discovered_identifiers`` as a unit of its own (a single identifier cannot be
        mixed up with another person's part), each unit once."""
        out: list[dict[str, str]] = []
        singles = [{n: v} for n, vs in self.discovered_identifiers.items() for v in vs]
        for unit in [*self.identities, *singles]:
            if unit and unit not in out:
                out.append(dict(unit))
        return out


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str
