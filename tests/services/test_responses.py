"""Outcomes, response status and reasons from per-system results, refusals included."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from services.responses import TaskOutcome, response_status, summarise
from streams.records import (
    FieldOutcome,
    Kind,
    Outcome,
    Reason,
    ResponseStatus,
    SystemOutcome,
    TaskResult,
    TaskStatus,
    utcnow,
)

OK, FAILED, TIMED_OUT = TaskStatus.OK, TaskStatus.FAILED, TaskStatus.TIMED_OUT
NA, REFUSED = TaskStatus.NOT_APPLICABLE, TaskStatus.REFUSED


def outcome(
    system: str,
    status: TaskStatus = OK,
    kind: Kind = Kind.DISCLOSURE,
    looked_up: bool = False,
    **result: Any,
) -> TaskOutcome:
    if status in (NA, FAILED, TIMED_OUT):
        return TaskOutcome(system, status, f"{system}: {status}", None, looked_up)
    body = TaskResult(
        request_id="r",
        task_id=f"r:{system}",
        system=system,
        kind=kind,
        status="ok",
        started_at=utcnow(),
        **result,
    )
    return TaskOutcome(system, status, None, body, looked_up)


def corrected(system: str, *fields: str, **details: Any) -> TaskOutcome:
    changes = [{"table": "t", "field": f, "old": "a", "new": "b"} for f in fields]
    return outcome(
        system,
        kind=Kind.CORRECTION,
        changed=len(fields),
        fields=list(fields),
        details={"changes": changes, **details},
    )


def withheld(system: str) -> Reason:
    return Reason(code="harm_to_principal_or_third_party", message="risk of harm", system=system)


@dataclass
class Case:
    kind: Kind
    outcomes: list[TaskOutcome]
    status: ResponseStatus
    systems: list[Outcome]
    reasons: set[str] = field(default_factory=set)
    requested: list[str] = field(default_factory=list)


CORRECTION = Kind.CORRECTION
CASES = {
    "disclosure, data in one system, none in another: completed": Case(
        Kind.DISCLOSURE,
        [outcome("crm", records=[{"a": 1}]), outcome("orders")],
        ResponseStatus.COMPLETED,
        [Outcome.DONE, Outcome.NO_DATA],
    ),
    "disclosure, nothing anywhere: completed, and no data is a reason": Case(
        Kind.DISCLOSURE,
        [outcome("crm"), outcome("orders"), outcome("ads", NA)],
        ResponseStatus.COMPLETED,
        [Outcome.NO_DATA, Outcome.NO_DATA, Outcome.NOT_APPLICABLE],
        {"no_data"},
    ),
    "disclosure, nothing found where the lookup found the principal: already done": Case(
        Kind.DISCLOSURE,
        [outcome("crm", looked_up=True), outcome("orders")],
        ResponseStatus.COMPLETED,
        [Outcome.ALREADY_DONE, Outcome.NO_DATA],
    ),
    "disclosure, one failure beside data: partial": Case(
        Kind.DISCLOSURE,
        [outcome("crm", records=[{"a": 1}]), outcome("orders", FAILED)],
        ResponseStatus.PARTIALLY_COMPLETED,
        [Outcome.DONE, Outcome.FAILED],
        {"system_failed"},
    ),
    "disclosure, nothing found beside a time-out: failed, never no data": Case(
        Kind.DISCLOSURE,
        [outcome("crm"), outcome("orders", TIMED_OUT)],
        ResponseStatus.FAILED,
        [Outcome.NO_DATA, Outcome.TIMED_OUT],
        {"system_timed_out"},
    ),
    "no system can answer: failed, with the reason": Case(
        Kind.SUSPENSION,
        [outcome("crm", NA), outcome("orders", NA)],
        ResponseStatus.FAILED,
        [Outcome.NOT_APPLICABLE, Outcome.NOT_APPLICABLE],
        {"no_applicable_system"},
    ),
    "correction never sent to the one system able to do it: failed": Case(
        CORRECTION,
        [outcome("crm", NA), outcome("orders", NA)],
        ResponseStatus.FAILED,
        [Outcome.NOT_APPLICABLE, Outcome.NOT_APPLICABLE],
        {"no_applicable_system"},
        ["email"],
    ),
    "correction made: completed": Case(
        CORRECTION,
        [corrected("crm", "email"), outcome("ads", NA)],
        ResponseStatus.COMPLETED,
        [Outcome.DONE, Outcome.NOT_APPLICABLE],
        requested=["email"],
    ),
    "correction that changed nothing: never completed": Case(
        CORRECTION,
        [corrected("crm")],
        ResponseStatus.FAILED,
        [Outcome.NO_DATA],
        {"no_data"},
        ["email"],
    ),
    "correction whose value was already there (principal found): completed": Case(
        CORRECTION,
        [outcome("crm", kind=CORRECTION, looked_up=True, details={"changes": []})],
        ResponseStatus.COMPLETED,
        [Outcome.ALREADY_DONE],
        requested=["email"],
    ),
    "field held but correctable nowhere: not correctable, never not found": Case(
        CORRECTION,
        [
            corrected("crm", not_correctable=["email"]),
            corrected("ads", not_found=["email"]),
        ],
        ResponseStatus.FAILED,
        [Outcome.FIELD_NOT_CORRECTABLE, Outcome.FIELD_NOT_FOUND],
        {"field_not_correctable"},
        ["email"],
    ),
    "one field corrected, one held nowhere: partial": Case(
        CORRECTION,
        [
            corrected("crm", "email", not_found=["fax"]),
            corrected("ads", not_found=["email", "fax"]),
        ],
        ResponseStatus.PARTIALLY_COMPLETED,
        [Outcome.DONE, Outcome.FIELD_NOT_FOUND],
        {"field_not_found"},
        ["email", "fax"],
    ),
    "field not found beside a failure: nobody says no system holds it": Case(
        CORRECTION,
        [corrected("crm", "email", not_found=["fax"]), outcome("billing", FAILED)],
        ResponseStatus.PARTIALLY_COMPLETED,
        [Outcome.DONE, Outcome.FAILED],
        {"system_failed"},
        ["email", "fax"],
    ),
    "erasure where a system holds the principal but cannot erase: partial": Case(
        Kind.ERASURE,
        [outcome("crm", kind=Kind.ERASURE, changed=2), outcome("archive", NA, looked_up=True)],
        ResponseStatus.PARTIALLY_COMPLETED,
        [Outcome.DONE, Outcome.NOT_SUPPORTED],
        {"not_supported"},
    ),
    "erasure finding nothing: completed, without claiming nothing is held": Case(
        Kind.ERASURE,
        [outcome("crm", kind=Kind.ERASURE)],
        ResponseStatus.COMPLETED,
        [Outcome.NO_DATA],
    ),
    "part of the records withheld by the connector: partial": Case(
        Kind.DISCLOSURE,
        [outcome("crm", records=[{"a": 1}], refusal=withheld("crm")), outcome("orders")],
        ResponseStatus.PARTIALLY_COMPLETED,
        [Outcome.REFUSED, Outcome.NO_DATA],
        {"harm_to_principal_or_third_party"},
    ),
    "every system withholds everything: refused, not no data": Case(
        Kind.DISCLOSURE,
        [
            outcome("crm", REFUSED, refusal=withheld("crm")),
            outcome("orders", refusal=withheld("orders")),
        ],
        ResponseStatus.REFUSED,
        [Outcome.REFUSED, Outcome.REFUSED],
        {"harm_to_principal_or_third_party"},
    ),
    # Was partially_completed: nothing was done, so "completed in part" overstated it.
    "a refusal beside a failure, nothing done: failed": Case(
        Kind.DISCLOSURE,
        [outcome("crm", REFUSED, refusal=withheld("crm")), outcome("orders", FAILED)],
        ResponseStatus.FAILED,
        [Outcome.REFUSED, Outcome.FAILED],
        {"harm_to_principal_or_third_party", "system_failed"},
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_status_outcomes_and_reasons(case: Case) -> None:
    summary = summarise(case.kind, case.outcomes, case.requested)
    assert summary.status is case.status
    assert [s.outcome for s in summary.systems] == case.systems
    assert {r.code for r in summary.reasons} == case.reasons
    assert response_status(case.kind, summary.systems, summary.corrections) is case.status


def test_a_system_that_cannot_act_says_so_in_words() -> None:
    summary = summarise(
        Kind.SUSPENSION,
        [
            outcome("crm", kind=Kind.SUSPENSION, changed=1),
            outcome("archive", NA, looked_up=True),
        ],
        [],
    )
    [reason] = [r for r in summary.reasons if r.code == "not_supported"]
    assert reason.system == "archive"
    assert reason.message == (
        "archive holds the principal's data but cannot act on a request for suspension of use."
    )


def test_each_correction_field_has_its_outcomes_per_system() -> None:
    summary = summarise(
        CORRECTION,
        [
            corrected("crm", "email", not_correctable=["birthday"], not_found=["fax"]),
            corrected("ads", not_found=["email", "birthday", "fax"]),
            outcome("billing", TIMED_OUT),
            outcome("legacy", NA),
        ],
        ["email", "birthday", "fax"],
    )
    assert summary.corrections == [
        FieldOutcome(field="email", outcome=Outcome.DONE, systems=["crm"]),
        FieldOutcome(field="email", outcome=Outcome.FIELD_NOT_FOUND, systems=["ads"]),
        FieldOutcome(field="email", outcome=Outcome.TIMED_OUT, systems=["billing"]),
        FieldOutcome(field="birthday", outcome=Outcome.FIELD_NOT_FOUND, systems=["ads"]),
        FieldOutcome(field="birthday", outcome=Outcome.FIELD_NOT_CORRECTABLE, systems=["crm"]),
        FieldOutcome(field="birthday", outcome=Outcome.TIMED_OUT, systems=["billing"]),
        FieldOutcome(field="fax", outcome=Outcome.FIELD_NOT_FOUND, systems=["ads", "crm"]),
        FieldOutcome(field="fax", outcome=Outcome.TIMED_OUT, systems=["billing"]),
    ]
    # fax may be in billing, which never answered: no "no system holds the field"
    assert "field_not_found" not in {r.code for r in summary.reasons}
    assert summary.status is ResponseStatus.PARTIALLY_COMPLETED


def test_a_correction_already_in_place_is_completed_only_where_every_holder_has_it() -> None:
    already = outcome("crm", kind=CORRECTION, looked_up=True, details={"changes": []})
    held_elsewhere = corrected("ads", not_correctable=["email"])
    assert summarise(CORRECTION, [already], ["email"]).status is ResponseStatus.COMPLETED
    both = summarise(CORRECTION, [already, held_elsewhere], ["email"])
    assert both.status is ResponseStatus.PARTIALLY_COMPLETED  # ads still holds the old value


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ({"status": "ok", "records": 2}, Outcome.DONE),
        ({"status": "ok"}, Outcome.NO_DATA),
        ({"status": "failed"}, Outcome.FAILED),
        ({"status": "pending"}, Outcome.FAILED),
        ({"status": "timed_out"}, Outcome.TIMED_OUT),
        ({"status": "not_applicable"}, Outcome.NOT_APPLICABLE),
        ({"status": "refused"}, Outcome.REFUSED),
    ],
)
def test_a_response_stored_before_outcomes_existed_reads_as_no_more_than_its_status(
    stored: dict[str, Any], expected: Outcome
) -> None:
    assert SystemOutcome.model_validate({"system": "crm", **stored}).outcome is expected
