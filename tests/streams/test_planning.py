"""Waves: identity resolution unlocks systems; erase_after orders erasure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.datamap import DataMapError, parse
from services.delivery.storage import LocalStorage
from services.demo.scenario import event
from services.ledger import Ledger
from services.ledger.models import Task as TaskRow
from streams.context import Pipeline
from streams.planning import Planned, next_wave, task_messages
from streams.records import FAN_OUT_KINDS, Kind, RequestEvent, Task, TaskStatus

DATAMAP = """
subject_identifiers: [email]
systems:
  crm: {connector: fake, identifiers: [email], discovers: [customer_id]}
  orders: {connector: fake, identifiers: [customer_id], discovers: [order_id]}
  shipping: {connector: fake, identifiers: [order_id]}
  cache: {connector: fake, identifiers: [email], erase_after: [crm]}
  analytics: {connector: fake, identifiers: [email], excluded: pseudonymised}
"""


class Capable:
    """A connector stand-in that answers ``supports``: planning needs nothing else."""

    def __init__(self, kinds: frozenset[Kind]) -> None:
        self.kinds = kinds

    def supports(self, kind: Kind) -> bool:
        return kind in self.kinds

    def close(self) -> None:
        pass


@pytest.fixture
def ctx(tmp_path: Path) -> Pipeline:
    return pipeline_for(tmp_path, DATAMAP)


@pytest.fixture
def stores(tmp_path: Path) -> Pipeline:
    """Stores out of scope, and one cleared for My Number."""
    extra = """
  stats: {connector: fake, identifiers: [email], excluded: anonymised}
  payroll: {connector: fake, identifiers: [email, my_number], my_number_cleared: true}
"""
    return pipeline_for(tmp_path, DATAMAP.rstrip("\n") + extra)


def pipeline_for(tmp_path: Path, text: str) -> Pipeline:
    datamap = parse(text)
    every = frozenset(Kind)
    connectors: dict[str, Any] = {name: Capable(every) for name in datamap.systems}
    return Pipeline(
        Ledger(f"sqlite:///{tmp_path}/l.db"), datamap, LocalStorage(tmp_path), connectors
    )


def erasure(**ids: str) -> RequestEvent:
    return RequestEvent.model_validate(
        event("r", "erasure", ids or {"email": "a@example.jp"}, grounds=["no_longer_needed"])
    )


def statuses(plans: list[Any]) -> dict[str, tuple[int, str]]:
    return {p.system: (p.wave, p.status.value) for p in plans}


def test_first_wave_runs_what_the_request_identifies(ctx: Pipeline) -> None:
    plans = next_wave(ctx, erasure(), {}, [])
    assert statuses(plans) == {"crm": (0, "pending"), "analytics": (0, "not_applicable")}
    assert "pseudonymised" in next(p.reason for p in plans if p.system == "analytics")


def test_discovered_identifier_unlocks_the_next_wave(ctx: Pipeline) -> None:
    done = [Planned("crm", 0, TaskStatus.OK), Planned("analytics", 0, TaskStatus.NOT_APPLICABLE)]
    plans = next_wave(ctx, erasure(), {"customer_id": ["C-1"]}, done)
    assert statuses(plans) == {"orders": (1, "pending"), "cache": (1, "pending")}


def test_erase_after_waits_for_its_source(ctx: Pipeline) -> None:
    running = [
        Planned("crm", 0, TaskStatus.PENDING),
        Planned("analytics", 0, TaskStatus.NOT_APPLICABLE),
    ]
    assert next_wave(ctx, erasure(), {}, running) == []


def test_erase_after_a_failed_source_is_not_erased(ctx: Pipeline) -> None:
    failed = [Planned("crm", 0, TaskStatus.FAILED)]
    plans = {p.system: p for p in next_wave(ctx, erasure(), {}, failed)}
    assert plans["cache"].status is TaskStatus.FAILED
    assert "crm" in (plans["cache"].reason or "")


def test_erase_after_only_applies_to_erasure(ctx: Pipeline) -> None:
    disclosure = RequestEvent.model_validate(event("r", "disclosure", {"email": "a@x.jp"}))
    assert statuses(next_wave(ctx, disclosure, {}, []))["cache"] == (0, "pending")


def test_systems_nothing_can_unlock_are_not_applicable_with_a_reason(ctx: Pipeline) -> None:
    done = [
        Planned("crm", 0, TaskStatus.OK),
        Planned("analytics", 0, TaskStatus.NOT_APPLICABLE),
        Planned("cache", 1, TaskStatus.OK),
    ]
    plans = next_wave(ctx, erasure(), {}, done)  # crm found no customer_id
    assert statuses(plans) == {"orders": (2, "not_applicable"), "shipping": (2, "not_applicable")}
    assert all("no identifier" in (p.reason or "") for p in plans)


def test_request_carrying_the_identifier_skips_discovery(ctx: Pipeline) -> None:
    plans = next_wave(ctx, erasure(email="a@x.jp", order_id="O-1"), {}, [])
    assert statuses(plans)["shipping"] == (0, "pending")


def test_purpose_notification_asks_the_systems_the_request_identifies(ctx: Pipeline) -> None:
    pn = RequestEvent.model_validate(event("r", "purpose_notification", {"email": "a@x.jp"}))
    assert statuses(next_wave(ctx, pn, {}, [])) == {
        "crm": (0, "pending"),
        "cache": (0, "pending"),
        "analytics": (0, "not_applicable"),
    }


@pytest.mark.parametrize("kind", sorted(FAN_OUT_KINDS))
def test_rule_10_pseudonymised_and_anonymised_stores_are_never_fanned_out(
    stores: Pipeline, kind: Kind
) -> None:
    extra: dict[str, Any] = {}
    if kind in (Kind.SUSPENSION, Kind.ERASURE, Kind.THIRD_PARTY_STOP):
        extra["grounds"] = ["no_longer_needed"]
    if kind is Kind.CORRECTION:
        extra["correction"] = {"changes": [{"field": "name", "value": "x"}]}
    request = RequestEvent.model_validate(event("r", kind, {"email": "a@x.jp"}, **extra))
    plans = {p.system: p for p in next_wave(stores, request, {}, [])}
    assert plans["crm"].status is TaskStatus.PENDING
    for store, flag in (("analytics", "pseudonymised"), ("stats", "anonymised")):
        assert plans[store].status is TaskStatus.NOT_APPLICABLE
        assert flag in (plans[store].reason or "")


def test_my_number_only_reaches_systems_cleared_for_it(stores: Pipeline) -> None:
    request = erasure(email="a@x.jp", my_number="123456789018")
    rows = [
        TaskRow(task_id=Task.make_id("r", s, "erasure"), system=s, wave=0, status="pending")
        for s in ("crm", "payroll")
    ]
    found = {"my_number": ["123456789018"], "customer_id": ["C-1"]}
    sent = {
        Task.model_validate_json(m.value).system: Task.model_validate_json(m.value)
        for m in task_messages(stores, request, found, rows)
    }
    assert sent["payroll"].identifiers == {"email": "a@x.jp", "my_number": "123456789018"}
    assert sent["payroll"].discovered == found
    assert sent["crm"].identifiers == {"email": "a@x.jp"}
    assert sent["crm"].discovered == {"customer_id": ["C-1"]}


def test_a_system_handling_my_number_must_be_cleared_for_it() -> None:
    with pytest.raises(DataMapError, match="my_number_cleared"):
        parse("systems:\n  hr: {connector: fake, identifiers: [email, my_number]}\n")
