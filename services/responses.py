"""Turn a request's per-system outcomes into its response status and reasons.

Every refusal and every partial outcome carries a reason code and a
human-readable reason (APPI Art. 36), whether it comes from the policy (an
operator's decision), from a data-map rule or from a connector; "no data found" is itself an outcome
that the principal is told about (Arts. 32(3), 33(3)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streams.records import (
    HOLDS_DATA,
    PACKAGE_KINDS,
    Kind,
    Reason,
    ResponseStatus,
    SystemOutcome,
    TaskResult,
    TaskStatus,
)


@dataclass(frozen=True)
class TaskOutcome:
    """What the ledger knows of one task: its status, and its result if any."""

    system: str
    status: TaskStatus
    error: str | None
    result: TaskResult | None
    #: The resolve phase found the principal in this system (its lookup held data).
    looked_up: bool = False


@dataclass(frozen=True)
class Summary:
    status: ResponseStatus
    systems: list[SystemOutcome]
    reasons: list[Reason]


def summarise(kind: Kind, outcomes: Sequence[TaskOutcome]) -> Summary:
    systems = [_system_outcome(o) for o in outcomes]
    reasons: list[Reason] = []
    failed = [o for o in outcomes if o.status in (TaskStatus.FAILED, TaskStatus.TIMED_OUT)]
    succeeded = [o for o in outcomes if o.status is TaskStatus.OK]
    # Withheld by a data-map rule (status refused) or in part by the connector itself.
    refusals = [o.result.refusal for o in outcomes if o.result and o.result.refusal]
    reasons += refusals
    for o in failed:
        code = "system_timed_out" if o.status is TaskStatus.TIMED_OUT else "system_failed"
        if o.result and o.result.error_code:
            code = f"system_{o.result.error_code}"
        reasons.append(
            Reason(code=code, system=o.system, message=f"{o.system}: {o.error or 'no result'}")
        )
    if kind is Kind.CORRECTION:
        reasons += _fields_not_found(succeeded)
    if (
        kind in PACKAGE_KINDS | {Kind.PURPOSE_NOTIFICATION}
        and not failed
        and not refusals
        and not any(
            o.result and (o.result.records or o.result.details.get(HOLDS_DATA)) for o in succeeded
        )
    ):
        reasons.append(
            Reason(
                code="no_data",
                message="No retained personal data about the principal was found in any system.",
            )
        )
    if not succeeded and not failed and not refusals:
        reasons.append(
            Reason(
                code="no_applicable_system",
                message="No system holding personal data supports this request.",
            )
        )
    if failed:
        partly = bool(succeeded or refusals)
        status = ResponseStatus.PARTIALLY_COMPLETED if partly else ResponseStatus.FAILED
    elif refusals:
        # refused in whole only when no system answered anything
        partly = any(
            o.result is None or not o.result.refusal or o.result.records or o.result.changed
            for o in succeeded
        )
        status = ResponseStatus.PARTIALLY_COMPLETED if partly else ResponseStatus.REFUSED
    else:
        status = ResponseStatus.COMPLETED
    return Summary(status, systems, reasons)


def _system_outcome(o: TaskOutcome) -> SystemOutcome:
    r = o.result
    return SystemOutcome(
        system=o.system,
        status=o.status,
        error=o.error,
        changed=r.changed if r else 0,
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


def _fields_not_found(succeeded: Sequence[TaskOutcome]) -> list[Reason]:
    """A correction field that no system holds is reported, never silently dropped."""
    found: set[str] = set()
    missing: set[str] = set()
    for o in succeeded:
        if o.result is None:
            continue
        found.update(c.get("field", "") for c in o.result.details.get("changes", []))
        missing.update(o.result.details.get("not_found", []))
    return [
        Reason(code="field_not_found", message=f"No system holds the field {f!r}.")
        for f in sorted(missing - found)
    ]
