"""Claim check: a sealed result too large for a message goes to the package store, and
comes back whole, on a local directory and on S3 (moto's server)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.crypto import LocalKeyProvider
from services.crypto.sealing import Sealer
from services.delivery.claims import ClaimCheck
from services.delivery.s3storage import S3Storage
from services.delivery.storage import LocalStorage, ObjectNotFound, Storage
from streams.records import Kind, Task, TaskResult, TaskStatus
from tests.fixtures.moto_server import moto_server, s3_client  # noqa: F401

LIMIT = 1024


def _result(sealer: Sealer, rows: int, request_id: str = "r-1") -> TaskResult:
    """A disclosure result of ``rows`` records, sealed as a runner sends it."""
    task_id = Task.make_id(request_id, "crm", Kind.DISCLOSURE)
    sealer.keys.data_key(request_id, create=True)
    records = [{"_source": "orders", "id": i, "note": "x" * 100} for i in range(rows)]
    result = TaskResult(
        request_id=request_id,
        task_id=task_id,
        system="crm",
        kind=Kind.DISCLOSURE,
        status=TaskStatus.OK,
        records=records,
        started_at=datetime.now(UTC),
    )
    return sealer.seal(result)


@pytest.fixture
def sealer(tmp_path: Path) -> Sealer:
    return Sealer(LocalKeyProvider(tmp_path / "keys"))


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "packages")
    endpoint = request.getfixturevalue("moto_server")
    s3: Any = s3_client(endpoint)
    bucket = f"claims-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    return S3Storage(bucket, client=s3, sse="AES256")


def test_a_small_result_travels_as_it_is(sealer: Sealer, storage: Storage) -> None:
    small = _result(sealer, rows=1)
    assert ClaimCheck(storage, LIMIT).check_in(small) == small


def test_a_large_result_goes_by_claim_and_comes_back_whole(
    sealer: Sealer, storage: Storage
) -> None:
    claims = ClaimCheck(storage, LIMIT)
    large = _result(sealer, rows=20_000)  # about 3 MiB sealed: over a broker's 1 MiB
    assert large.sealed is not None and len(large.sealed) > 2**21
    sent = claims.check_in(large)
    assert sent.sealed is None and sent.claim is not None
    assert sent.claim.startswith("claims/r-1/")
    assert len(sent.model_dump_json()) < 2048
    assert storage.get(sent.claim) == large.sealed.encode()  # ciphertext only
    back = claims.redeem(TaskResult.model_validate_json(sent.model_dump_json()))
    assert back == large
    assert len(sealer.open(back).records) == 20_000
    assert claims.check_in(large).claim == sent.claim  # named by content: resends agree


def test_a_claim_of_another_request_or_altered_in_the_store_is_refused(
    sealer: Sealer, storage: Storage
) -> None:
    claims = ClaimCheck(storage, LIMIT)
    sent = claims.check_in(_result(sealer, rows=50))
    assert sent.claim is not None
    moved = sent.model_copy(update={"request_id": "r-2"})
    with pytest.raises(ValueError, match="not request r-2's"):
        claims.redeem(moved)
    storage.put(sent.claim, b"something else", "application/octet-stream")
    with pytest.raises(ValueError, match="does not hold the value it names"):
        claims.redeem(sent)


def test_a_missing_claim_says_so(sealer: Sealer, tmp_path: Path) -> None:
    sent = ClaimCheck(LocalStorage(tmp_path / "a"), LIMIT).check_in(_result(sealer, rows=50))
    with pytest.raises(ObjectNotFound):
        ClaimCheck(LocalStorage(tmp_path / "b"), LIMIT).redeem(sent)


def test_a_claim_key_must_have_its_shape() -> None:
    with pytest.raises(ValueError, match="claim"):
        TaskResult.model_validate(
            {
                "request_id": "r-1",
                "task_id": "r-1:crm:disclosure",
                "system": "crm",
                "kind": "disclosure",
                "status": "ok",
                "started_at": "2026-11-30T00:00:00Z",
                "claim": "responses/r-1/../../etc/passwd",
            }
        )
