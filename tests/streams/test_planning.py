"""Resolve, then act: lookup waves close the identity graph; discovery and erase_after
order the kinds that change data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from services.datamap import DataMapError, parse
from services.delivery.storage import LocalStorage
from services.demo.scenario import event
from services.ledger import Ledger
from services.ledger.models import Request
from services.ledger.models import Task as TaskRow
from streams.context import Pipeline
from streams.planning import Planned, identity_graph, next_step, next_wave, task_messages
from streams.records import FAN_OUT_KINDS, Kind, RequestEvent, Task, TaskStatus, utcnow

DATAMAP = """
subject_identifiers: [email]
systems:
  crm: {connector: fake, identifiers: [email], discovers: [customer_id]}
  orders: {connector: fake, identifiers: [customer_id], discovers: [order_id]}
  shipping: {connector: fake, identifiers: [order_id]}
  cache: {connector: fake, identifiers: [email], erase_after: [crm]}
  analytics: {connector: fake, identifiers: [email], excluded: pseudonymised}
"""


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
    return Pipeline(
        Ledger(f"sqlite:///{tmp_path}/l.db"),
        datamap,
        LocalStorage(tmp_path),
        capabilities=dict.fromkeys(datamap.systems, every),
    )


def erasure(**ids: str) -> RequestEvent:
    return RequestEvent.model_validate(
        event("r", "erasure", ids or {"email": "a@example.jp"}, grounds=["no_longer_needed"])
    )


def statuses(plans: list[Any]) -> dict[str, tuple[int, str]]:
    return {p.system: (p.wave, p.status.value) for p in plans}


EMAIL = {"email": "a@example.jp"}
CRM_UNIT = {"email": "a@example.jp", "customer_id": "C-1"}
RESOLVED = [CRM_UNIT, {"order_id": "O-1"}]


def graph(*found: dict[str, str], event: RequestEvent | None = None) -> list[dict[str, str]]:
    return identity_graph(event or erasure(), list(found))


def lookup(system: str, wave: int, status: TaskStatus = TaskStatus.OK) -> Planned:
    return Planned(system, wave, status, lookup=True)


CLOSED = [lookup("crm", 0), lookup("orders", 1)]


def test_the_first_step_looks_the_principal_up_where_the_request_identifies_them(
    ctx: Pipeline,
) -> None:
    plans = next_step(ctx, erasure(), graph(), [])
    assert [(p.task_id, p.status) for p in plans] == [("r:crm:lookup:0", TaskStatus.PENDING)]


def test_lookup_waves_follow_what_each_wave_found_until_the_graph_is_closed(
    ctx: Pipeline,
) -> None:
    assert next_step(ctx, erasure(), graph(), [lookup("crm", 0, TaskStatus.PENDING)]) == []
    wave1 = next_step(ctx, erasure(), graph(CRM_UNIT), [lookup("crm", 0)])
    assert [p.task_id for p in wave1] == ["r:orders:lookup:1"]  # shipping discovers nothing
    actions = next_step(ctx, erasure(), graph(*RESOLVED), CLOSED)
    assert all(not Task.is_lookup_id(p.task_id) for p in actions)  # closed: act now


def test_a_closed_graph_plans_every_system_at_once_and_orders_erasure_by_it(
    ctx: Pipeline,
) -> None:
    plans = next_step(ctx, erasure(), graph(*RESOLVED), CLOSED)
    # shipping was reached through orders, orders through the CRM: the source goes last
    assert statuses(plans) == {"shipping": (0, "pending"), "analytics": (0, "not_applicable")}
    done = [Planned("shipping", 0, TaskStatus.FAILED), Planned("analytics", 0, TaskStatus.OK)]
    # any end releases its source: the graph is kept, so shipping can be redriven later
    assert statuses(next_wave(ctx, erasure(), graph(*RESOLVED), done, CLOSED)) == {
        "orders": (1, "pending")
    }
    done.append(Planned("orders", 1, TaskStatus.OK))
    assert statuses(next_wave(ctx, erasure(), graph(*RESOLVED), done, CLOSED)) == {
        "crm": (2, "pending")
    }
    done.append(Planned("crm", 2, TaskStatus.OK))
    assert statuses(next_wave(ctx, erasure(), graph(*RESOLVED), done, CLOSED)) == {
        "cache": (3, "pending")  # erase_after: [crm]
    }


def test_kinds_that_change_nothing_act_everywhere_at_once(ctx: Pipeline) -> None:
    disclosure = RequestEvent.model_validate(event("r", "disclosure", EMAIL))
    plans = next_step(ctx, disclosure, graph(*RESOLVED, event=disclosure), CLOSED)
    assert {s for s, (_, st) in statuses(plans).items() if st == "pending"} == {
        "crm",
        "orders",
        "shipping",
        "cache",
    }


def test_a_failed_lookup_leaves_what_it_would_have_reached_failed_not_absent(
    ctx: Pipeline,
) -> None:
    looked = [lookup("crm", 0, TaskStatus.FAILED)]
    plans = {p.system: p for p in next_step(ctx, erasure(), graph(), looked)}
    assert plans["orders"].status is TaskStatus.FAILED
    assert "lookup in crm" in (plans["orders"].reason or "")
    assert plans["shipping"].status is TaskStatus.NOT_APPLICABLE  # orders was never looked up
    assert statuses(list(plans.values()))["crm"] == (0, "pending")  # keyed by the request


def test_erase_after_a_failed_source_is_not_erased(ctx: Pipeline) -> None:
    failed = [Planned("crm", 0, TaskStatus.FAILED)]
    plans = {p.system: p for p in next_wave(ctx, erasure(), graph(), failed)}
    assert plans["cache"].status is TaskStatus.FAILED
    assert "crm" in (plans["cache"].reason or "")


def test_erase_after_only_applies_to_erasure(ctx: Pipeline) -> None:
    disclosure = RequestEvent.model_validate(event("r", "disclosure", {"email": "a@x.jp"}))
    assert statuses(next_wave(ctx, disclosure, graph(event=disclosure), []))["cache"] == (
        0,
        "pending",
    )


def test_systems_nothing_can_unlock_are_not_applicable_with_a_reason(ctx: Pipeline) -> None:
    plans = next_step(ctx, erasure(), graph(), [lookup("crm", 0)])  # the CRM found nobody
    assert statuses(plans)["orders"] == (0, "not_applicable")
    assert statuses(plans)["shipping"] == (0, "not_applicable")
    assert all(
        "no identifier" in (p.reason or "")
        for p in plans
        if p.system != "analytics" and p.status is TaskStatus.NOT_APPLICABLE
    )


def test_request_carrying_the_identifier_needs_no_discovery(ctx: Pipeline) -> None:
    request = erasure(email="a@x.jp", order_id="O-1")
    plans = next_step(ctx, request, graph(event=request), [lookup("crm", 0)])  # CRM: nobody
    assert statuses(plans)["shipping"] == (0, "pending")
    assert statuses(plans)["crm"] == (0, "pending")  # orders, its dependant, never runs


def test_a_composite_key_is_supplied_by_one_unit_never_by_parts_of_two(tmp_path: Path) -> None:
    ctx = pipeline_for(
        tmp_path,
        """
systems:
  crm: {connector: fake, identifiers: [email], discovers: [country_code, phone]}
  loyalty: {connector: fake, identifiers: [[country_code, phone]]}
""",
    )
    parts = graph({"country_code": "81"}, {"phone": "9011112222"})
    assert statuses(next_wave(ctx, erasure(), parts, [], [lookup("crm", 0)]))["loyalty"] == (
        0,
        "not_applicable",
    )
    whole = graph({"country_code": "81", "phone": "9011112222"})
    rows = [TaskRow(task_id="r:loyalty:erasure:0", system="loyalty", wave=0, status="pending")]
    [sent] = task_messages(ctx, erasure(), whole, rows)
    assert Task.model_validate_json(sent.value).identities == [
        {"country_code": "81", "phone": "9011112222"}
    ]


def test_systems_that_supply_each_other_keys_do_not_wait_forever(tmp_path: Path) -> None:
    """Known by neither system's key directly, each found the other's: the graph is kept,
    so both are acted on."""
    ctx = pipeline_for(
        tmp_path,
        """
systems:
  a: {connector: fake, identifiers: [x], discovers: [y]}
  b: {connector: fake, identifiers: [y], discovers: [x]}
  c: {connector: fake, identifiers: [email], discovers: [x, y]}
""",
    )
    found = graph({"x": "1", "y": "2"})
    done = [lookup("a", 1), lookup("b", 1), lookup("c", 0)]
    plans = next_step(ctx, erasure(), found, done)
    assert statuses(plans) == {"a": (0, "pending"), "b": (0, "pending")}  # c waits for both


def test_old_format_graph_reads_as_one_unit_per_value(ctx: Pipeline) -> None:
    ctx.ledger.migrate()
    ctx.ledger.admit(erasure(), "proceed", None, utcnow())
    with ctx.ledger.session() as s:
        s.execute(
            update(Request)
            .where(Request.request_id == "r")
            .values(discovered={"customer_id": ["C-1"], "order_id": ["O-1", "O-2"]})
        )
    row = ctx.ledger.request("r")
    assert row is not None
    kept = identity_graph(erasure(), ctx.ledger.identities(row))
    assert kept == [EMAIL, {"customer_id": "C-1"}, {"order_id": "O-1"}, {"order_id": "O-2"}]
    plans = next_step(ctx, erasure(), kept, CLOSED)
    assert statuses(plans)["shipping"] == (0, "pending")


def test_purpose_notification_resolves_then_asks_every_system(ctx: Pipeline) -> None:
    pn = RequestEvent.model_validate(event("r", "purpose_notification", {"email": "a@x.jp"}))
    assert [p.task_id for p in next_step(ctx, pn, graph(event=pn), [])] == ["r:crm:lookup:0"]
    assert statuses(next_step(ctx, pn, graph(event=pn), [lookup("crm", 0)])) == {
        "crm": (0, "pending"),
        "cache": (0, "pending"),
        "analytics": (0, "not_applicable"),
        "orders": (0, "not_applicable"),
        "shipping": (0, "not_applicable"),
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
    plans = {p.system: p for p in next_wave(stores, request, graph(event=request), [])}
    assert plans["crm"].status is TaskStatus.PENDING
    for store, flag in (("analytics", "pseudonymised"), ("stats", "anonymised")):
        assert plans[store].status is TaskStatus.NOT_APPLICABLE
        assert flag in (plans[store].reason or "")


def test_my_number_only_reaches_systems_cleared_for_it(stores: Pipeline) -> None:
    request = erasure(email="a@x.jp", my_number="123456789018")
    rows = [
        TaskRow(task_id=Task.make_id("r", s, "erasure"), system=s, wave=0, status="pending")
        for s in ("crm", "payroll", "orders")
    ]
    found = [{"customer_id": "C-1", "my_number": "123456789018"}]
    sent = {
        Task.model_validate_json(m.value).system: Task.model_validate_json(m.value)
        for m in task_messages(stores, request, graph(*found, event=request), rows)
    }
    assert sent["payroll"].identifiers == {"email": "a@x.jp", "my_number": "123456789018"}
    # payroll is keyed by email or my_number: the found unit adds neither
    assert sent["payroll"].identities == [{"email": "a@x.jp", "my_number": "123456789018"}]
    assert sent["crm"].identifiers == {"email": "a@x.jp"}
    assert sent["crm"].identities == [{"email": "a@x.jp"}]
    assert sent["orders"].identities == [{"customer_id": "C-1"}]  # the unit, less my_number


def test_a_system_handling_my_number_must_be_cleared_for_it() -> None:
    with pytest.raises(DataMapError, match="my_number_cleared"):
        parse("systems:\n  hr: {connector: fake, identifiers: [email, my_number]}\n")


@pytest.mark.parametrize(
    "kind", [Kind.DISCLOSURE, Kind.THIRD_PARTY_RECORDS, Kind.ERASURE, Kind.THIRD_PARTY_STOP]
)
@pytest.mark.parametrize(
    "done", [(), ("crm",), ("crm", "orders"), ("crm", "orders", "shipping", "cache")]
)
def test_once_every_system_has_its_task_nothing_more_is_planned(
    ctx: Pipeline, kind: Kind, done: tuple[str, ...]
) -> None:
    """What ``aggregate.still_running`` relies on: planning decides only systems without
    a task, whatever the others' statuses and whatever waits on what."""
    grounds = (
        {"grounds": ["no_longer_needed"]} if kind in (Kind.ERASURE, Kind.THIRD_PARTY_STOP) else {}
    )
    request = RequestEvent.model_validate(event("r", kind.value, EMAIL, **grounds))
    actions = [
        Planned(s, 2, TaskStatus.OK if s in done else TaskStatus.PENDING)
        for s in ctx.datamap.systems
    ]
    assert next_step(ctx, request, graph(*RESOLVED, event=request), [*CLOSED, *actions]) == []


def test_a_result_can_release_a_system_while_others_still_run(ctx: Pipeline) -> None:
    """Why every system must have its task before a result is known to plan nothing: the
    cache waits on the CRM's erasure, and is planned when it is done, orders running."""
    actions = [
        Planned("crm", 2, TaskStatus.OK),
        Planned("orders", 2, TaskStatus.PENDING),
        Planned("shipping", 2, TaskStatus.PENDING),
        Planned("analytics", 2, TaskStatus.NOT_APPLICABLE),
    ]
    plans = next_step(ctx, erasure(), graph(*RESOLVED), [*CLOSED, *actions])
    assert statuses(plans) == {"cache": (3, "pending")}
