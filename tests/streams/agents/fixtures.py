"""A pipeline context on real SQLite systems and a real ledger, without a broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event

from connectors import pseudonyms
from connectors.base import ConnectorBase
from connectors.dispatch import dispatch, ok_result
from connectors.registry import build_all, capabilities
from connectors.runner import crossing
from services.crypto import LocalKeyProvider
from services.crypto.sealing import Sealer
from services.datamap import parse
from services.delivery.encrypted import EncryptedStorage
from services.delivery.storage import LocalStorage
from services.demo.seed import seed
from services.ledger import Ledger
from streams import topics
from streams.agents import aggregate, fanout
from streams.context import Outgoing, Pipeline
from streams.records import Accepted, AcceptedVia, ResponseEvent, Task, dump, utcnow

DEMO_DATAMAP = Path(__file__).parents[3] / "services" / "demo" / "datamap.yaml"


@dataclass
class Harness(Pipeline):
    """The worker's context, and the connectors a runner would call (``run_tasks``)."""

    connectors: dict[str, ConnectorBase[Any]] = field(default_factory=dict)


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    seed(tmp_path)
    datamap = parse(DEMO_DATAMAP.read_text())
    keys = LocalKeyProvider(tmp_path / "keys")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", sealer=Sealer(keys))
    ledger.migrate()
    p = Harness(
        ledger=ledger,
        datamap=datamap,
        storage=EncryptedStorage(LocalStorage(tmp_path / "packages"), keys),
        capabilities=capabilities(datamap),
        sealer=Sealer(keys),  # as in production: tasks and results cross sealed
        connectors=build_all(datamap),
    )
    yield p
    p.close()
    for c in p.connectors.values():
        c.close()


@pytest.fixture
def erasure_key() -> Iterator[None]:
    """The deployment's erasure key, which a ``hash`` erasure (the orders') needs."""
    pseudonyms.configure(b"k" * 32)
    yield
    pseudonyms.configure(None)


def accepted(request_id: str) -> Accepted:
    """What intake sends to fan-out for ``request_id``."""
    return Accepted(request_id=request_id, via=AcceptedVia.INTAKE)


def to(topic: str, out: list[Outgoing]) -> list[Outgoing]:
    return [o for o in out if o.topic == topic]


def run_tasks(p: Harness, out: list[Outgoing]) -> list[bytes]:
    """Play the connector runner for the tasks in ``out``: the real connectors, no retries,
    tasks opened and results sealed with the pipeline's keys (and claim-checked)."""
    results = []
    for o in out:
        if not o.topic.startswith(topics.TASKS_PREFIX):
            continue
        received = Task.model_validate_json(o.value)
        task = crossing.opened(received, p.sealer)
        result = ok_result(task, dispatch(p.connectors[task.system], task), utcnow())
        results.append(dump(crossing.outgoing(result, received, p.sealer, p.claims)))
    return results


def drive(p: Harness, request_id: str) -> ResponseEvent:
    """Fan out, run every task, aggregate; return the one response."""
    out = fanout.handle_accepted(p, request_id)
    responses = to(topics.RESPONSES, out)
    while results := run_tasks(p, out):  # each wave's results unlock the next
        out = [o for raw in results for o in aggregate.handle_result(p, raw)]
        responses += to(topics.RESPONSES, out)
    [response] = responses
    return ResponseEvent.model_validate(body(response))


def body(out: Outgoing) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(out.value)
    return value


def opened(p: Pipeline, rejected: dict[str, Any]) -> bytes:
    """What a rejected event kept, sealed to the pipeline, opened with the pipeline's key."""
    assert p.sealer is not None and rejected["sealed_raw"] is not None
    return p.sealer.open_from_pipeline("RejectedEvent", rejected["sealed_raw"], "rejected")


@contextmanager
def transactions(p: Pipeline) -> Iterator[list[int]]:
    """Counts the ledger transactions begun inside."""
    begun: list[int] = []

    def on_begin(_conn: Any) -> None:
        begun.append(1)

    sa_event.listen(p.ledger.engine, "begin", on_begin)
    try:
        yield begun
    finally:
        sa_event.remove(p.ledger.engine, "begin", on_begin)
