"""Response status and reasons from per-system outcomes, refusals included."""

from __future__ import annotations

from typing import Any

from services.responses import TaskOutcome, summarise
from streams.records import Kind, Reason, ResponseStatus, TaskResult, TaskStatus, utcnow


def outcome(system: str, status: TaskStatus = TaskStatus.OK, **result: Any) -> TaskOutcome:
    body = TaskResult(
        request_id="r",
        task_id=f"r:{system}",
        system=system,
        kind=Kind.DISCLOSURE,
        status="ok",
        started_at=utcnow(),
        **result,
    )
    return TaskOutcome(system, status, None, body)


def withheld(system: str) -> Reason:
    return Reason(code="harm_to_principal_or_third_party", message="risk of harm", system=system)


def test_a_connector_withholding_part_of_its_records_makes_the_response_partial() -> None:
    summary = summarise(
        Kind.DISCLOSURE,
        [outcome("crm", records=[{"a": 1}], refusal=withheld("crm")), outcome("orders")],
    )
    assert summary.status is ResponseStatus.PARTIALLY_COMPLETED
    assert [(r.code, r.system) for r in summary.reasons] == [
        ("harm_to_principal_or_third_party", "crm")
    ]
    assert summary.systems[0].reason_code == "harm_to_principal_or_third_party"


def test_when_every_system_withholds_everything_the_request_is_refused_not_no_data() -> None:
    summary = summarise(
        Kind.DISCLOSURE,
        [
            outcome("crm", TaskStatus.REFUSED, refusal=withheld("crm")),
            outcome("orders", refusal=withheld("orders")),
        ],
    )
    assert summary.status is ResponseStatus.REFUSED
    assert "no_data" not in [r.code for r in summary.reasons]  # data may exist: it is withheld


def test_a_refusal_beside_a_failure_is_still_a_partial_answer() -> None:
    failed = TaskOutcome("orders", TaskStatus.FAILED, "down", None)
    summary = summarise(
        Kind.DISCLOSURE, [outcome("crm", TaskStatus.REFUSED, refusal=withheld("crm")), failed]
    )
    assert summary.status is ResponseStatus.PARTIALLY_COMPLETED
    assert {r.code for r in summary.reasons} == {
        "harm_to_principal_or_third_party",
        "system_failed",
    }
