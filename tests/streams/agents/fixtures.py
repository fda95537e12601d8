"""A pipeline context on real SQLite systems and a real ledger, without a broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.base import dispatch, ok_result
from connectors.registry import build_all
from services.crypto import LocalKeyProvider
from services.datamap import parse
from services.delivery.encrypted import EncryptedStorage
from services.delivery.storage import LocalStorage
from services.demo.seed import seed
from services.ledger import Ledger
from streams import topics
from streams.context import Outgoing, Pipeline
from streams.records import Task, utcnow

DEMO_DATAMAP = Path(__file__).parents[3] / "services" / "demo" / "datamap.yaml"


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    seed(tmp_path)
    datamap = parse(DEMO_DATAMAP.read_text())
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    p = Pipeline(
        ledger=ledger,
        datamap=datamap,
        storage=EncryptedStorage(
            LocalStorage(tmp_path / "packages"), LocalKeyProvider(tmp_path / "keys")
        ),
        connectors=build_all(datamap),
    )
    yield p
    p.close()


def to(topic: str, out: list[Outgoing]) -> list[Outgoing]:
    return [o for o in out if o.topic == topic]


def run_tasks(p: Pipeline, out: list[Outgoing]) -> list[bytes]:
    """Play the connector runner for the tasks in ``out``: the real connectors, no retries."""
    results = []
    for o in out:
        if not o.topic.startswith(topics.TASKS_PREFIX):
            continue
        task = Task.model_validate_json(o.value)
        started = utcnow()
        outcome = dispatch(p.connectors[task.system], task)
        results.append(ok_result(task, outcome, started).model_dump_json().encode())
    return results


def body(out: Outgoing) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(out.value)
    return value
