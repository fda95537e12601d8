"""Discovered identifiers become one lookup per value; results merge into one."""

from __future__ import annotations

import pytest

from connectors.errors import FatalError
from connectors.lookups import MAX_LOOKUPS, lookups, merge
from connectors.results import OperationResult
from streams.records import Task


def task(**discovered: list[str]) -> Task:
    return Task(
        request_id="r",
        task_id="t",
        system="s",
        kind="erasure",
        identifiers={"email": "a@x.jp"},
        discovered=discovered,
    )


def test_no_discovery_is_one_lookup() -> None:
    assert lookups(task()) == [{"email": "a@x.jp"}]


def test_each_discovered_value_is_looked_up() -> None:
    assert lookups(task(order_id=["O-1", "O-2"])) == [
        {"email": "a@x.jp", "order_id": "O-1"},
        {"email": "a@x.jp", "order_id": "O-2"},
    ]


def test_request_identifiers_win_over_discovered_ones() -> None:
    assert lookups(task(email=["other@x.jp"])) == [{"email": "a@x.jp"}]


def test_too_many_combinations_are_refused() -> None:
    values = [str(i) for i in range(MAX_LOOKUPS + 1)]
    with pytest.raises(FatalError, match="lookups"):
        lookups(task(order_id=values))


def test_merge_sums_changes_and_dedupes_records() -> None:
    a = OperationResult(
        records=[{"id": 1, "_source": "t"}],
        changed=1,
        fields=["x"],
        details={"changes": [{"field": "x"}]},
        discovered_identifiers={"order_id": ["O-1"]},
    )
    b = OperationResult(
        records=[{"id": 1, "_source": "t"}, {"id": 2, "_source": "t"}],
        changed=2,
        fields=["y"],
        details={"changes": [{"field": "y"}]},
        discovered_identifiers={"order_id": ["O-1", "O-2"]},
    )
    m = merge([a, b])
    assert m.changed == 3
    assert m.records == [{"id": 1, "_source": "t"}, {"id": 2, "_source": "t"}]
    assert m.fields == ["x", "y"]
    assert m.details == {"changes": [{"field": "x"}, {"field": "y"}]}
    assert m.discovered_identifiers == {"order_id": ["O-1", "O-2"]}
