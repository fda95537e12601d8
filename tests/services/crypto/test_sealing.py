"""Tasks and results cross Kafka with their personal data sealed under the request's key."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.crypto import BlobError, KeyDestroyed, LocalKeyProvider
from services.crypto.sealing import Sealer
from streams.records import Change, Kind, Task, TaskResult, dump, utcnow

EMAIL = "taro@example.jp"


@pytest.fixture
def sealer(tmp_path: Path) -> Sealer:
    return Sealer(LocalKeyProvider(tmp_path / "keys"))


def task(request_id: str = "r-1") -> Task:
    return Task(
        request_id=request_id,
        task_id=Task.make_id(request_id, "crm", "correction"),
        system="crm",
        kind=Kind.CORRECTION,
        identifiers={"email": EMAIL},
        identities=[{"email": EMAIL}, {"customer_id": "C-42", "phone": "03-0000-0000"}],
        changes=[Change(field="phone", value="090-1234-5678")],
    )


def result(request_id: str = "r-1") -> TaskResult:
    return TaskResult(
        request_id=request_id,
        task_id=Task.make_id(request_id, "crm", "correction"),
        system="crm",
        kind=Kind.CORRECTION,
        status="ok",
        records=[{"_source": "customers", "email": EMAIL}],
        changed=1,
        fields=["phone"],
        details={"changes": [{"field": "phone", "old": "03-0000-0000", "new": "090-1234-5678"}]},
        identities=[{"customer_id": "C-42", "email": EMAIL}],
        started_at=utcnow(),
    )


@pytest.mark.parametrize("make", [task, result])
def test_personal_fields_cross_sealed_and_open_as_they_were(
    sealer: Sealer, make: type[Task] | type[TaskResult]
) -> None:
    plain = make()
    if isinstance(plain, TaskResult):
        sealer.keys.data_key("r-1", create=True)  # the worker made it when it sent the task
    wire = dump(sealer.seal(plain))
    for secret in (EMAIL, "C-42", "090-1234-5678", "03-0000-0000"):
        assert secret.encode() not in wire
    assert b'"request_id":"r-1"' in wire and b'"system":"crm"' in wire  # still routable
    back = sealer.open(type(plain).model_validate_json(wire))
    assert back == plain


def test_a_sealed_task_cannot_be_replayed_as_another_requests(sealer: Sealer) -> None:
    sealed = sealer.seal(task("r-1"))
    sealer.keys.data_key("r-2", create=True)
    moved = sealed.model_copy(update={"request_id": "r-2"})
    with pytest.raises(BlobError):
        sealer.open(moved)
    flipped = sealed.sealed[:-4] + ("AAAA" if not sealed.sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(BlobError):
        sealer.open(sealed.model_copy(update={"sealed": flipped}))


def test_once_the_key_is_shredded_old_events_stay_sealed(tmp_path: Path) -> None:
    keys = LocalKeyProvider(tmp_path / "keys")
    wire = dump(Sealer(keys).seal(task()))
    assert keys.destroy("r-1")
    with pytest.raises(KeyDestroyed):
        Sealer(keys).open(Task.model_validate_json(wire))  # a fresh process: no cached key


def test_a_result_is_never_sealed_under_a_key_the_worker_did_not_make(sealer: Sealer) -> None:
    with pytest.raises(KeyDestroyed):
        sealer.seal(result("never-sent"))
