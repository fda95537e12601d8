"""Producers seal to the pipeline's public key and cannot open anything."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from services.crypto import BlobError, CryptoError, LocalKeyProvider
from services.crypto.public import PublicKey, export_for_producers, seal_to
from services.crypto.sealing import SEALED_REQUEST, RequestSealer, Sealer
from services.settings import Settings
from streams.records import Kind, Task, TaskResult, utcnow

EMAIL = "hanako@example.jp"
EVENT = json.dumps({"request_id": "r-1", "kind": "access", "identifiers": {"email": EMAIL}})


@pytest.fixture
def worker(tmp_path: Path) -> Sealer:
    return Sealer(LocalKeyProvider(tmp_path / "pipeline-keys"))


@pytest.fixture
def producer(tmp_path: Path, worker: Sealer) -> RequestSealer:
    """A producer's host: a copy of the exported public key file, and nothing else."""
    settings = Settings(home=tmp_path, keys_dir_override=str(tmp_path / "pipeline-keys"))
    exported = export_for_producers(settings)
    assert exported == worker.producer().public
    host = tmp_path / "producer"
    host.mkdir()
    shutil.copy(settings.pipeline_public_key_path, host / "pipeline.pub")
    only = settings.model_copy(
        update={"seal_events": True, "pipeline_public_key_override": str(host / "pipeline.pub")}
    )
    sealer = RequestSealer.from_settings(only)
    assert sealer is not None
    return sealer


def test_a_request_sealed_by_a_producer_opens_only_with_the_pipeline_key(
    tmp_path: Path, worker: Sealer, producer: RequestSealer
) -> None:
    sealed = producer.seal_request(EVENT.encode())
    assert EMAIL.encode() not in sealed
    envelope = json.loads(sealed)
    assert worker.open_request(envelope)["identifiers"] == {"email": EMAIL}

    # The producer's side: whatever keys it makes for itself, it cannot open.
    own = Sealer(LocalKeyProvider(tmp_path / "producer" / "keys"))
    with pytest.raises(BlobError, match="not held"):
        own.open_request(envelope)
    # Two seals of the same event differ: a new ephemeral key each time.
    assert producer.seal_request(EVENT.encode()) != sealed


def test_a_producer_cannot_open_a_sealed_task_result(tmp_path: Path, worker: Sealer) -> None:
    task = Task(
        request_id="r-1",
        task_id=Task.make_id("r-1", "crm", "correction"),
        system="crm",
        kind=Kind.CORRECTION,
        identifiers={"email": EMAIL},
    )
    worker.seal(task)  # the worker makes the request's data key
    result = TaskResult(
        request_id="r-1",
        task_id=task.task_id,
        system="crm",
        kind=Kind.CORRECTION,
        status="ok",
        started_at=utcnow(),
        records=[{"email": EMAIL}],
    )
    sealed = worker.seal(result)
    assert worker.open(sealed).records == [{"email": EMAIL}]
    own = Sealer(LocalKeyProvider(tmp_path / "producer" / "keys"))
    with pytest.raises(CryptoError):
        own.open(sealed)


def test_altered_or_renamed_blobs_do_not_open(worker: Sealer) -> None:
    public = worker.producer().public
    blob = bytearray(seal_to(public, "RequestEvent", b"{}"))
    assert worker.pipeline is not None
    with pytest.raises(BlobError, match="authenticate"):
        worker.pipeline.open("DeadLetter", bytes(blob), where="x")
    blob[-1] ^= 1
    with pytest.raises(BlobError, match="authenticate"):
        worker.pipeline.open("RequestEvent", bytes(blob), where="x")


def test_rotation_keeps_old_keys_by_id_until_retired(worker: Sealer) -> None:
    keys = worker.pipeline
    assert keys is not None
    old = keys.public()
    sealed_old = json.loads(RequestSealer(old).seal_request(EVENT.encode()))
    new = keys.create("pk-2")
    assert keys.public() == new != old
    sealed_new = json.loads(worker.seal_request(EVENT.encode()))
    blob = base64.b64decode(sealed_new[SEALED_REQUEST])
    assert blob[2 : 2 + blob[1]].decode() == "pk-2"
    # Both open, each with its own private key, found by the key id in the blob.
    fresh = Sealer(worker.keys)
    assert fresh.open_request(sealed_old)["request_id"] == "r-1"
    assert fresh.open_request(sealed_new)["request_id"] == "r-1"
    assert keys.retire(old.key_id)
    fresh = Sealer(worker.keys)
    with pytest.raises(BlobError, match="not held"):
        fresh.open_request(sealed_old)
    assert fresh.open_request(sealed_new)["request_id"] == "r-1"


def test_a_public_key_file_is_checked() -> None:
    with pytest.raises(ValueError, match="dsr-pipeline-public-key/1"):
        PublicKey.parse(json.dumps({"format": "x", "key_id": "k", "public_key": ""}))
    with pytest.raises(ValueError, match="32 bytes"):
        PublicKey.parse(
            json.dumps({"format": "dsr-pipeline-public-key/1", "key_id": "k", "public_key": "AA=="})
        )


def test_dsr_keys_public_prints_rotates_and_retires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    monkeypatch.delenv("DSR_KEYS_DIR", raising=False)
    monkeypatch.delenv("DSR_PIPELINE_PUBLIC_KEY", raising=False)
    runner = CliRunner()
    first = runner.invoke(app, ["keys", "public"])
    assert first.exit_code == 0, first.output
    old = PublicKey.parse(first.stdout)
    assert PublicKey.load(tmp_path / "keys" / "pipeline.pub") == old
    assert runner.invoke(app, ["keys", "public"]).stdout == first.stdout  # stable
    rotated = runner.invoke(app, ["keys", "public", "--new", "--retire", old.key_id])
    assert rotated.exit_code == 0, rotated.output
    new = PublicKey.parse(rotated.stdout)
    assert new.key_id != old.key_id and PublicKey.load(tmp_path / "keys" / "pipeline.pub") == new
    assert not (tmp_path / "keys" / "pipeline" / f"{old.key_id}.key").exists()
    assert runner.invoke(app, ["keys", "public", "--retire", old.key_id]).exit_code == 1
