"""Calling a connector from the kit, so every failure reads as advice to its author."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

import pytest

from connectors.base import METHODS, ConnectorBase
from connectors.loop import run as run_on_loop
from connectors.results import OperationResult
from streams.records import Change, Kind

T = TypeVar("T")

#: The grounds the kit passes to suspend, erase and stop.
GROUNDS = ["conformance_test"]

#: The order the kit runs operations in: reads first, erasure last.
ORDER = [
    Kind.DISCLOSURE,
    Kind.THIRD_PARTY_RECORDS,
    Kind.CORRECTION,
    Kind.SUSPENSION,
    Kind.THIRD_PARTY_STOP,
    Kind.ERASURE,
]
READS = (Kind.DISCLOSURE, Kind.THIRD_PARTY_RECORDS)
#: The change passed to ``correct()`` when the harness gave none.
PLACEHOLDER = Change(field="name", value="conformance")


def fail(message: str) -> NoReturn:
    """Fail the test with ``message`` alone: the kit's own stack is no help to the author."""
    raise pytest.fail.Exception(message, pytrace=False) from None


def attempt(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``; a ``NotImplementedError`` fails the test, naming ``what``."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as exc:
        fail(f"{what} is not implemented yet: {exc or 'it raises NotImplementedError'}")


def label(kind: Kind, *, dry_run: bool = False) -> str:
    """How messages name an operation: ``connector.erase(dry_run=True)``."""
    return f"connector.{METHODS[kind]}({'dry_run=True' if dry_run else ''})"


def invoke(
    connector: ConnectorBase[Any],
    kind: Kind,
    identifiers: Mapping[str, str],
    *,
    change: Change | None = None,
    dry_run: bool = False,
) -> Any:
    """Call the method that answers ``kind`` as the pipeline would, awaiting an async one."""
    method = getattr(connector, METHODS[kind])
    if kind in READS:
        return awaited(method(identifiers))
    if kind is Kind.CORRECTION:
        return awaited(method(identifiers, [change or PLACEHOLDER], dry_run=dry_run))
    return awaited(method(identifiers, grounds=GROUNDS, dry_run=dry_run))


def awaited(value: T | Awaitable[T]) -> T:
    """``value``, or what it resolves to on the connectors' loop if it is awaitable."""
    if not inspect.isawaitable(value):
        return value
    pending = value

    async def wait() -> T:
        return await pending

    return run_on_loop(wait())


def run(
    connector: ConnectorBase[Any],
    kind: Kind,
    identifiers: Mapping[str, str],
    *,
    change: Change | None = None,
    dry_run: bool = False,
) -> OperationResult:
    """``invoke()``, failing readably if the method is unwritten or returns something else."""
    what = label(kind, dry_run=dry_run)
    result = attempt(what, invoke, connector, kind, identifiers, change=change, dry_run=dry_run)
    if not isinstance(result, OperationResult):
        fail(f"{what} returned {type(result).__name__}, not an OperationResult")
    return result


def check_records(what: str, records: Sequence[Any]) -> None:
    """Records are JSON-ready dicts, each naming its ``_source``."""
    for record in records:
        if not isinstance(record, dict):
            fail(f"{what} returned a record that is a {type(record).__name__}, not a dict")
        if "_source" not in record:
            fail(
                f"{what} returned a record without a '_source' key (the table or object it "
                f"came from): {_short(record)}"
            )
        try:
            json.dumps(record)
        except (TypeError, ValueError) as exc:
            fail(f"{what} returned a record that is not JSON-ready ({exc}): {_short(record)}")


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
