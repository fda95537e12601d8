"""Async connectors run through the same dispatch as sync ones, concurrently per lookup."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
from pydantic import BaseModel

from connectors.aio import AsyncConnector
from connectors.base import Identifiers
from connectors.dispatch import check, dispatch
from connectors.errors import NotSupported, RetriableError
from connectors.results import CheckResult, OperationResult
from streams.records import Kind, Task


class Empty(BaseModel):
    pass


class SlowStore(AsyncConnector[Empty]):
    """An async store: each lookup awaits I/O (a sleep) before answering."""

    name = "slow_store"
    Config = Empty
    capabilities = frozenset({Kind.DISCLOSURE, Kind.ERASURE})

    def __init__(self, system: str, config: object) -> None:
        super().__init__(system, {})
        self.rows = {"O-1": {"order_id": "O-1"}, "O-2": {"order_id": "O-2"}}
        self.threads: set[str] = set()
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_next = False

    async def check(self) -> CheckResult:
        return CheckResult(True, "reachable")

    async def disclose(self, identifiers: Identifiers) -> OperationResult:
        self.threads.add(threading.current_thread().name)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.05)
        self.in_flight -= 1
        if self.fail_next:
            raise RetriableError("busy", retry_after=1.0)
        row = self.rows.get(identifiers.get("order_id", ""))
        return OperationResult(records=[{**row, "_source": "orders"}] if row else [])

    async def erase(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        gone = self.rows.pop(identifiers.get("order_id", ""), None)
        return OperationResult(changed=int(gone is not None), dry_run=dry_run)


def task(kind: str = "disclosure") -> Task:
    return Task(
        request_id="r",
        task_id="t",
        system="s",
        kind=kind,
        identifiers={"email": "a@x.jp"},
        identities=[{"order_id": "O-1"}, {"order_id": "O-2"}],
        grounds=["no_longer_needed"] if kind == "erasure" else [],
    )


def test_async_lookups_run_concurrently_off_the_callers_thread() -> None:
    store = SlowStore("s", {})
    result = dispatch(store, task())
    assert [r["order_id"] for r in result.records] == ["O-1", "O-2"]
    assert store.most_in_flight == 2, "the two lookups should be awaited together"
    assert store.threads == {"dsr-connector-loop"}


def test_async_erasure_changes_then_is_idempotent() -> None:
    store = SlowStore("s", {})
    assert dispatch(store, task("erasure")).changed == 2
    assert dispatch(store, task("erasure")).changed == 0


def test_async_errors_keep_their_class_and_retry_after() -> None:
    store = SlowStore("s", {})
    store.fail_next = True
    with pytest.raises(RetriableError) as exc:
        dispatch(store, task())
    assert exc.value.retry_after == 1.0


def test_undeclared_kinds_are_not_supported() -> None:
    with pytest.raises(NotSupported):
        dispatch(SlowStore("s", {}), task("suspension").model_copy(update={"grounds": ["x"]}))


def test_check_is_awaited() -> None:
    assert check(SlowStore("s", {})) == CheckResult(True, "reachable")
