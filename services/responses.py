"""Turn a request's per-system results into outcomes, its response status and reasons.

Each system's part ends in one ``Outcome`` (``streams.records``), and each field of a
correction in one outcome per system. ``response_status`` is the one place the
request's status comes from:

- ``completed`` only when every system that holds the principal's data did what was
  asked (``done`` or ``already_done``; ``no_data``, ``field_not_found`` and
  ``not_applicable`` systems hold nothing to act on). A correction is completed only
  when every requested field was corrected somewhere, or already held the value asked
  for (``already_done``: the principal was found there and nothing differed), and no
  system that holds the field failed, refused or may not correct it. A correction that
  changed nothing for any other reason is never completed.
- ``partially_completed`` when something was done and something was not.
- ``refused`` when nothing was done and refusals are all that stood in the way.
- ``failed`` otherwise: failures, time-outs, fields that may not be corrected, a
  correction that found nothing to correct, and a request that no system in the data
  map can answer (every system ``not_applicable``; reason ``no_applicable_system``).

Every refusal and every partial outcome carries a reason code and a human-readable
reason (APPI Art. 36), whether it comes from the policy (an operator's decision), from
a data-map rule or from a connector; "no data found" is itself an outcome that the
principal is told about (Arts. 32(3), 33(3)).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from streams.records import (
    HOLDS_DATA,
    PACKAGE_KINDS,
    CorrectionReport,
    FieldOutcome,
    Kind,
    Outcome,
    Reason,
    RefusedPart,
    ResponseStatus,
    SystemOutcome,
    TaskResult,
    TaskStatus,
)

#: Did what was asked.
DONE = frozenset({Outcome.DONE, Outcome.ALREADY_DONE})
#: Holds nothing to act on: these never stand in the way of ``completed``.
HOLDS_NOTHING = frozenset({Outcome.NO_DATA, Outcome.FIELD_NOT_FOUND, Outcome.NOT_APPLICABLE})
#: Held, or may hold, the principal's data and did not do what was asked.
NOT_DONE = frozenset(Outcome) - DONE - HOLDS_NOTHING

_BY_STATUS = {
    TaskStatus.PENDING: Outcome.FAILED,  # never answered
    TaskStatus.FAILED: Outcome.FAILED,
    TaskStatus.TIMED_OUT: Outcome.TIMED_OUT,
    TaskStatus.REFUSED: Outcome.REFUSED,
}


#: Kinds a system holding the principal's data must itself answer. Provision records and
#: stops concern the systems that provide data to third parties, and a correction is
#: judged field by field, so for those a system that cannot do the kind is not applicable.
HOLDING_MEANS_ACTING = frozenset({Kind.DISCLOSURE, Kind.SUSPENSION, Kind.ERASURE})


@dataclass(frozen=True)
class TaskOutcome:
    """What the ledger knows of one task: its status, and its result if any.

    ``looked_up`` is true when the identity lookup found the principal in this system:
    an action there that found nothing to do is then ``already_done``, not ``no_data``.
    """

    system: str
    status: TaskStatus
    error: str | None
    result: TaskResult | None
    looked_up: bool = False


def withhold(outcomes: Sequence[TaskOutcome], refused: Sequence[RefusedPart]) -> list[TaskOutcome]:
    """A disclosure's outcomes with the parts an operator refused taken out: a system's
    records, or the refused fields of every record. The withheld part carries its
    refusal (the first, when several apply), so the system's outcome is ``refused``,
    with the records still disclosed counted."""
    out = []
    for o in outcomes:
        parts = [p for p in refused if p.covers(o.system)]
        r = o.result
        if not parts or r is None or r.refusal is not None or o.status is not TaskStatus.OK:
            out.append(o)
        else:
            out.append(replace(o, result=_withheld(o.system, r, parts)))
    return out


def _withheld(system: str, r: TaskResult, parts: Sequence[RefusedPart]) -> TaskResult:
    """``r`` without what ``parts`` refuse: everything, if one refuses the whole system."""
    if whole := next((p for p in parts if not p.fields), None):
        refusal = whole.as_reason(system)
        return r.model_copy(update={"records": [], "fields": [], "refusal": refusal})
    drop = {f for p in parts for f in p.fields}
    held = sorted({f for rec in r.records for f in rec if f in drop})
    if not held:
        return r
    first = next(p for p in parts if set(p.fields) & set(held))
    return r.model_copy(
        update={
            "records": [{k: v for k, v in rec.items() if k not in drop} for rec in r.records],
            "fields": [f for f in r.fields if f not in drop],
            "refusal": first.as_reason(system, ", ".join(held)),
        }
    )


@dataclass(frozen=True)
class Summary:
    status: ResponseStatus
    systems: list[SystemOutcome]
    reasons: list[Reason]
    corrections: list[FieldOutcome]


def summarise(
    kind: Kind, outcomes: Sequence[TaskOutcome], requested: Sequence[str] = ()
) -> Summary:
    """The response's outcomes, status and reasons; ``requested`` are the fields a
    correction asked to change."""
    correcting = kind is Kind.CORRECTION
    per_field = {o.system: field_outcomes(o, requested) if correcting else {} for o in outcomes}
    systems = [system_outcome(kind, o, per_field[o.system]) for o in outcomes]
    corrections = group_fields(requested, per_field) if correcting else []
    reasons = [o.result.refusal for o in outcomes if o.result and o.result.refusal]
    for o, s in zip(outcomes, systems, strict=True):
        if s.outcome in (Outcome.FAILED, Outcome.TIMED_OUT):
            reasons.append(_failure(o))
        elif s.outcome is Outcome.NOT_SUPPORTED:
            reasons.append(
                Reason(
                    code="not_supported",
                    system=o.system,
                    message=(
                        f"{o.system} holds the principal's data but cannot act on "
                        f"a request for {kind.words}."
                    ),
                )
            )
    reasons += _field_reasons(corrections)
    answering = [s for s in systems if s.outcome is not Outcome.NOT_APPLICABLE]
    if not answering:
        reasons.append(
            Reason(
                code="no_applicable_system",
                message=f"No system in the data map could carry out this {kind} request, "
                "so it was not carried out.",
            )
        )
    elif holds_nothing(kind, systems):
        reasons.append(
            Reason(
                code="no_data",
                message="No retained personal data about the principal was found in any system.",
            )
        )
    elif (
        kind is Kind.CORRECTION
        and not any(s.outcome in DONE for s in systems)
        and any(s.outcome is Outcome.NO_DATA for s in systems)
    ):
        reasons.append(
            Reason(
                code="no_data",
                message="No record of the principal holding these fields was found, "
                "so nothing was corrected.",
            )
        )
    return Summary(response_status(kind, systems, corrections), systems, reasons, corrections)


def response_status(
    kind: Kind, systems: Sequence[SystemOutcome], corrections: Sequence[FieldOutcome] = ()
) -> ResponseStatus:
    """The request's status from its outcomes: the rule is in the module docstring."""
    answering = [s for s in systems if s.outcome is not Outcome.NOT_APPLICABLE]
    if not answering:
        return ResponseStatus.FAILED
    outcomes = {s.outcome for s in answering}
    blocked = outcomes & NOT_DONE
    did_something = bool(outcomes & DONE) or any(
        s.outcome is Outcome.REFUSED and (s.records or s.changed) for s in answering
    )
    complete = not blocked
    if kind is Kind.CORRECTION:
        complete = _corrected(outcomes, corrections)
        did_something = did_something or any(f.outcome is Outcome.DONE for f in corrections)
    if complete and not blocked:
        return ResponseStatus.COMPLETED
    if did_something:
        return ResponseStatus.PARTIALLY_COMPLETED
    if blocked == {Outcome.REFUSED}:
        return ResponseStatus.REFUSED
    return ResponseStatus.FAILED


def _corrected(outcomes: set[Outcome], corrections: Sequence[FieldOutcome]) -> bool:
    """Whether a correction is complete: every field done somewhere and blocked nowhere;
    with nothing known per field, done by every answering system."""
    fields: dict[str, set[Outcome]] = {}
    for f in corrections:
        fields.setdefault(f.field, set()).add(f.outcome)
    if not fields:
        return outcomes <= DONE
    return all(got & DONE and not got & NOT_DONE for got in fields.values())


def holds_nothing(kind: Kind, systems: Sequence[SystemOutcome]) -> bool:
    """Every system asked found nothing of the principal's, and none failed, refused or
    knew the principal: only then may the principal be told that nothing is held."""
    answering = [s for s in systems if s.outcome is not Outcome.NOT_APPLICABLE]
    return (
        kind in PACKAGE_KINDS | {Kind.PURPOSE_NOTIFICATION}
        and bool(answering)
        and all(s.outcome is Outcome.NO_DATA for s in answering)
    )


def system_outcome(
    kind: Kind, o: TaskOutcome, fields: dict[str, Outcome] | None = None
) -> SystemOutcome:
    """One system's outcome; ``fields`` are its per-field outcomes for a correction."""
    r = o.result
    return SystemOutcome(
        system=o.system,
        status=o.status,
        outcome=_outcome(kind, o, fields or {}),
        error=o.error,
        changed=r.changed if r else 0,
        kept=r.kept if r else 0,
        pending_purge=r.pending_purge if r else 0,
        records=len(r.records) if r else 0,
        fields=list(r.fields) if r else [],
        reason_code=(
            r.error_code
            if r and r.error_code
            else r.refusal.code
            if r and r.refusal
            else "not_applicable"
            if o.status is TaskStatus.NOT_APPLICABLE
            else None
        ),
    )


def _outcome(kind: Kind, o: TaskOutcome, fields: dict[str, Outcome]) -> Outcome:
    if o.status is TaskStatus.NOT_APPLICABLE:
        held = o.looked_up and kind in HOLDING_MEANS_ACTING
        return Outcome.NOT_SUPPORTED if held else Outcome.NOT_APPLICABLE
    if o.status is not TaskStatus.OK:
        return _BY_STATUS[o.status]
    r = o.result
    if r is not None and r.refusal is not None:
        return Outcome.REFUSED
    if kind is Kind.CORRECTION and fields:
        got = set(fields.values())
        if Outcome.DONE in got:
            return Outcome.DONE
        if Outcome.FIELD_NOT_CORRECTABLE in got:
            return Outcome.FIELD_NOT_CORRECTABLE
        if Outcome.ALREADY_DONE in got:
            return Outcome.ALREADY_DONE
        if got == {Outcome.FIELD_NOT_FOUND}:
            return Outcome.FIELD_NOT_FOUND
        return Outcome.NO_DATA
    if r is not None and (r.records or r.changed or r.details.get(HOLDS_DATA)):
        return Outcome.DONE
    return Outcome.ALREADY_DONE if o.looked_up else Outcome.NO_DATA


def field_outcomes(o: TaskOutcome, requested: Sequence[str]) -> dict[str, Outcome]:
    """Each correction field's outcome in one system, from its connector's report
    (``CorrectionReport``)."""
    r = o.result
    report = (r.correction if r is not None else None) or CorrectionReport()
    changed, not_found = set(report.changed), set(report.not_found)
    not_correctable = set(report.not_correctable)
    names = list(dict.fromkeys([*requested, *changed, *not_correctable, *not_found]))
    if o.status is not TaskStatus.OK or (r is not None and r.refusal is not None):
        whole = _outcome(Kind.CORRECTION, o, {})
        return dict.fromkeys(names, whole)
    out: dict[str, Outcome] = {}
    for name in names:
        if name in changed:
            out[name] = Outcome.DONE
        elif name in not_correctable:
            out[name] = Outcome.FIELD_NOT_CORRECTABLE
        elif name in not_found:
            out[name] = Outcome.FIELD_NOT_FOUND
        else:  # held and correctable, and nothing differed, or the principal is not there
            out[name] = Outcome.ALREADY_DONE if o.looked_up else Outcome.NO_DATA
    return out


def group_fields(
    requested: Sequence[str], per_system: dict[str, dict[str, Outcome]]
) -> list[FieldOutcome]:
    """Each field's outcomes across systems, one entry per field and outcome, in the
    order requested and then in ``Outcome`` order. Systems that were not asked add
    nothing, unless no system was asked at all."""
    names = list(dict.fromkeys([*requested, *(f for fs in per_system.values() for f in fs)]))
    out = []
    for name in names:
        by: dict[Outcome, list[str]] = {}
        for system, fields in sorted(per_system.items()):
            if name in fields:
                by.setdefault(fields[name], []).append(system)
        asked: dict[Outcome, list[str]] = {
            k: v for k, v in by.items() if k is not Outcome.NOT_APPLICABLE
        }
        if not asked:
            asked = {Outcome.NOT_APPLICABLE: by.get(Outcome.NOT_APPLICABLE, [])}
        out += [
            FieldOutcome(field=name, outcome=k, systems=asked[k]) for k in Outcome if k in asked
        ]
    return out


def _field_reasons(corrections: Iterable[FieldOutcome]) -> list[Reason]:
    """A field no system holds, or that no system may correct, is reported, never
    silently dropped; "no system holds it" is said only when every system asked says so."""
    by: dict[str, dict[Outcome, list[str]]] = {}
    for f in corrections:
        by.setdefault(f.field, {})[f.outcome] = f.systems
    reasons = []
    for name, got in by.items():
        if set(got) == {Outcome.FIELD_NOT_FOUND}:
            reasons.append(
                Reason(
                    code="field_not_found",
                    field=name,
                    message=f"No system holds the field {name!r}.",
                )
            )
        if systems := got.get(Outcome.FIELD_NOT_CORRECTABLE):
            reasons.append(
                Reason(
                    code="field_not_correctable",
                    field=name,
                    message=f"The field {name!r} is held in {', '.join(systems)}, "
                    "where it may not be corrected.",
                )
            )
    return reasons


def _failure(o: TaskOutcome) -> Reason:
    code = "system_timed_out" if o.status is TaskStatus.TIMED_OUT else "system_failed"
    if o.result and o.result.error_code:
        code = f"system_{o.result.error_code}"
    return Reason(code=code, system=o.system, message=f"{o.system}: {o.error or 'no result'}")
