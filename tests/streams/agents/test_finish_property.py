"""No combination the contract allows makes a response raise: ``respond.finish`` on a
real ledger and package store, then the stored package or letter, then the notice.

Hypothesis draws the kind, the regulation, the delivery method, whether the request
was refused, and what each system did (ok with or without records, changes, refusals
and correction fates; failed; timed out; not applicable; withheld by a rule); these
are recorded in the ledger as the handlers record them, and the request is finished
as the aggregator or the sweeper finishes it. Written letters go through the real PDF
renderer; the electronic packages through the real JSON and CSV writers.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services import rules
from services.crypto import LocalKeyProvider
from services.crypto.sealing import Sealer
from services.datamap import parse
from services.delivery.encrypted import EncryptedStorage
from services.delivery.package import read_package
from services.delivery.storage import LocalStorage
from services.ledger import Ledger, TaskPlan
from streams import topics
from streams.agents import notices, respond
from streams.context import Pipeline
from streams.records import (
    Kind,
    Regulation,
    ResponseEvent,
    ResponseStatus,
    Task,
    TaskResult,
    TaskStatus,
)
from tests.services.test_statements_property import (
    Fact,
    FieldFate,
    facts,
    request,
    result_of,
)
from tests.streams.agents.fixtures import DEMO_DATAMAP

#: The property test's systems, as demo systems (one of which discloses on paper only).
SYSTEMS = {"sys-a": "crm", "sys-b": "orders", "sys-c": "shipping", "sys-d": "partners"}
DEADLINE = datetime(2030, 1, 1, tzinfo=UTC)
_ids = itertools.count()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    home = tmp_path_factory.mktemp("finish")
    datamap = parse(DEMO_DATAMAP.read_text())
    keys = LocalKeyProvider(home / "keys")
    ledger = Ledger(f"sqlite:///{home / 'ledger.db'}", sealer=Sealer(keys))
    ledger.migrate()
    p = Pipeline(
        ledger=ledger,
        datamap=datamap,
        storage=EncryptedStorage(LocalStorage(home / "packages"), keys),
        sealer=None,  # results are recorded here as a runner without sealing sends them
    )
    yield p
    p.close()


def record(p: Pipeline, request_id: str, kind: Kind, fact: Fact) -> TaskResult | None:
    """Plan ``fact``'s task as fan-out would, and record its result as aggregation does."""
    system = SYSTEMS[fact.system]
    task_id = Task.make_id(request_id, system, kind)
    result = result_of(kind, fact)
    if result is not None:
        result = result.model_copy(
            update={"request_id": request_id, "task_id": task_id, "system": system}
        )
    planned = {
        TaskStatus.NOT_APPLICABLE: TaskStatus.NOT_APPLICABLE,
        TaskStatus.REFUSED: TaskStatus.REFUSED,
    }.get(fact.status, TaskStatus.PENDING)
    kept = result.model_dump(mode="json") if planned is TaskStatus.REFUSED and result else None
    p.ledger.add_wave(request_id, [TaskPlan(task_id, system, kind, 0, planned, None, kept)])
    if fact.status is TaskStatus.OK and result is not None:
        p.ledger.record_results([result])
    elif fact.status is TaskStatus.FAILED:
        failed = TaskResult(
            request_id=request_id,
            task_id=task_id,
            system=system,
            kind=kind,
            status="failed",
            error="the system answered 500",
            error_code="retries_exhausted",
            started_at=DEADLINE - timedelta(days=1),
        )
        p.ledger.record_results([failed])
    return result


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    drawn=facts(),
    regulation=st.sampled_from(["appi", "gdpr", "ccpa"]),
    refused=st.integers(0, 5).map(lambda n: n == 0),
)
def test_every_response_is_built_stored_and_told(
    pipeline: Pipeline,
    drawn: tuple[Kind, str, list[str], list[Fact]],
    regulation: str,
    refused: bool,
) -> None:
    kind, method, requested, systems = drawn
    response = finished(pipeline, kind, method, requested, systems, regulation, refused)
    # refused by an operator's ground, or because every system withheld its part
    assert response.status is ResponseStatus.REFUSED or not refused


def did(system: str, kind: Kind) -> Fact:
    """A system that did what was asked, with an effect."""
    reads = kind in (Kind.DISCLOSURE, Kind.THIRD_PARTY_RECORDS, Kind.PURPOSE_NOTIFICATION)
    fields: dict[str, FieldFate] = {"email": "changed"} if kind is Kind.CORRECTION else {}
    return Fact(system, TaskStatus.OK, False, int(reads), int(not reads), False, fields)


def failed(system: str) -> Fact:
    return Fact(system, TaskStatus.FAILED, False, 0, 0, False, {})


@pytest.mark.parametrize("method", ["electronic", "written"])
@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("status", list(ResponseStatus))
def test_every_kind_method_and_status_is_built_stored_and_told(
    pipeline: Pipeline, kind: Kind, method: str, status: ResponseStatus
) -> None:
    """Each cell of kind x delivery method x response status, at least once (the
    written ones through the PDF renderer)."""
    systems = {
        ResponseStatus.COMPLETED: [did("sys-a", kind)],
        ResponseStatus.PARTIALLY_COMPLETED: [did("sys-a", kind), failed("sys-b")],
        ResponseStatus.FAILED: [failed("sys-a")],
        ResponseStatus.REFUSED: [did("sys-a", kind)],
    }[status]
    refused = status is ResponseStatus.REFUSED
    response = finished(pipeline, kind, method, ["email"], systems, "appi", refused)
    assert response.status is status


def finished(
    p: Pipeline,
    kind: Kind,
    method: str,
    requested: list[str],
    systems: list[Fact],
    regulation: str,
    refused: bool,
) -> ResponseEvent:
    """Admit, record what ``systems`` did, finish; check the response, its stored
    package or letter and its notice; return the response."""
    request_id = f"prop-{next(_ids)}"
    event = request(kind, method, requested).model_copy(
        update={"request_id": request_id, "regulation": Regulation(regulation)}
    )
    policy = rules.policy_for(regulation)
    ground = sorted(policy.refusal_codes)[0] if refused and policy.refusal_codes else None
    admitted = p.ledger.admit(event, "refuse" if ground else "proceed", ground, DEADLINE)
    assert admitted.outcome == "new"
    if ground is None:
        p.ledger.fan_out(request_id, [], timedelta(seconds=60))  # fanned out
        for fact in systems:
            record(p, request_id, kind, fact)
        p.ledger.time_out_tasks(request_id)  # the sweeper: the rest never answered

    out = respond.finish(p, request_id)

    [message] = [o for o in out if o.topic == topics.RESPONSES]
    response = ResponseEvent.model_validate_json(message.value)
    assert response.request_id == request_id and response.systems is not None
    if ground is not None:
        assert response.status is ResponseStatus.REFUSED
    if response.package or response.letter:
        files = read_package(p.storage, request_id)
        main = "letter.html" if response.letter else "data.json"
        assert files[main].strip(), f"{main} is empty"
        if response.letter:
            assert files["letter.pdf"].startswith(b"%PDF-")
        else:
            assert json.loads(files["data.json"])["request_id"] == request_id
    if method == "written":  # a letter whatever the outcome, a refusal's with its ground
        assert response.letter is not None
        if ground is not None:
            letter = read_package(p.storage, request_id)["letter.html"].decode()
            assert policy.refusal_codes[ground].ja in letter
    row = p.ledger.request(request_id)
    assert row is not None and row.completed_at is not None
    stored = p.ledger.responses([request_id])
    notice = notices.build(p, row, "response", "the enquiries desk", stored)
    assert notice is not None and notice.body.strip()
    assert respond.finish(p, request_id)  # re-sent while unpublished, never raises
    return response
