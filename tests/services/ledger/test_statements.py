"""The hot path's Core reads hand back the same entities, column for column, as the
ORM loads, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from services.ledger import Ledger
from services.ledger.models import Base, Request, Response, Task
from tests.fixtures.ledger_rows import finish


def _columns(entity: Base) -> dict[str, Any]:
    return {c.key: getattr(entity, c.key) for c in inspect(type(entity)).columns}


def test_core_reads_load_what_the_orm_loads(ledger: Ledger) -> None:
    finish(ledger, "r-1", {"crm": "ok", "orders": "failed"}, 0.2)
    assert ledger.complete("r-1", "partially_completed", {"reasons": []}, 5)
    with Session(ledger.engine) as s:
        request = s.get(Request, "r-1")
        response = s.get(Response, "r-1")
        tasks = list(s.scalars(select(Task).where(Task.request_id == "r-1").order_by(Task.system)))
    assert request is not None and response is not None and len(tasks) == 2

    row, read_tasks = ledger.progress("r-1")
    assert row is not None and _columns(row) == _columns(request)
    assert [_columns(t) for t in read_tasks] == [_columns(t) for t in tasks]
    assert [_columns(t) for t in ledger.tasks("r-1")] == [_columns(t) for t in tasks]
    assert _columns(ledger.request("r-1")) == _columns(request)  # type: ignore[arg-type]
    assert _columns(ledger.response("r-1")) == _columns(response)  # type: ignore[arg-type]
    assert ledger.request("r-2") is None and ledger.response("r-2") is None
    assert ledger.progress("r-2") == (None, [])
