"""A task's identity units become one lookup each; results merge into one."""

from __future__ import annotations

import pytest

from connectors.errors import FatalError
from connectors.lookups import MAX_LOOKUPS, lookups, merge
from connectors.results import OperationResult
from streams.records import Task


def task(*units: dict[str, str]) -> Task:
    return Task(
        request_id="r",
        task_id="t",
        system="s",
        kind="erasure",
        identifiers={"email": "a@x.jp"},
        identities=list(units),
    )


def test_a_task_without_units_is_looked_up_by_the_requests_identifiers() -> None:
    assert lookups(task()) == [{"email": "a@x.jp"}]


def test_each_unit_is_one_lookup_in_order_never_combined() -> None:
    units = [
        {"email": "a@x.jp"},
        {"country_code": "81", "phone": "9011112222"},
        {"country_code": "1", "phone": "4155550100", "customer_id": "C-2"},
    ]
    assert lookups(task(*units)) == units  # no call mixes one unit's part with another's


def test_a_unit_given_twice_or_inside_another_is_looked_up_once() -> None:
    assert lookups(task({"order_id": "O-1"}, {"order_id": "O-1"}, {"order_id": "O-2"})) == [
        {"order_id": "O-1"},
        {"order_id": "O-2"},
    ]
    assert lookups(task({"customer_id": "C-1", "email": "a@x.jp"}, {"customer_id": "C-1"})) == [
        {"customer_id": "C-1", "email": "a@x.jp"}
    ]


def test_many_units_stay_linear_and_too_many_are_refused() -> None:
    units = [{"order_id": str(i)} for i in range(MAX_LOOKUPS)]
    assert len(lookups(task(*units))) == MAX_LOOKUPS
    with pytest.raises(FatalError, match="identity units"):
        lookups(task(*units, {"order_id": "one more"}))


def test_merge_sums_changes_dedupes_records_and_keeps_units_whole() -> None:
    a = OperationResult(
        records=[{"id": 1, "_source": "t"}],
        changed=1,
        fields=["x"],
        details={"changes": [{"field": "x"}]},
        identities=[{"country_code": "81", "phone": "901"}],
    )
    b = OperationResult(
        records=[{"id": 1, "_source": "t"}, {"id": 2, "_source": "t"}],
        changed=2,
        fields=["y"],
        details={"changes": [{"field": "y"}]},
        identities=[{"country_code": "1", "phone": "415"}],
        discovered_identifiers={"order_id": ["O-1", "O-2"]},
    )
    m = merge([a, b])
    assert m.changed == 3
    assert m.records == [{"id": 1, "_source": "t"}, {"id": 2, "_source": "t"}]
    assert m.fields == ["x", "y"]
    assert m.details == {"changes": [{"field": "x"}, {"field": "y"}]}
    assert m.units() == [
        {"country_code": "81", "phone": "901"},
        {"country_code": "1", "phone": "415"},
        {"order_id": "O-1"},
        {"order_id": "O-2"},
    ]
