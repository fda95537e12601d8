"""Clear-text producers: a valid request, invalid JSON and a schema violation, each
naming someone, and a malformed task. Afterwards the identifiers are on no topic but
the ones producers wrote to, in no log and nowhere in the ledger's database files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from services.client import Submitter, Watcher, read_all
from services.demo.scenario import event
from services.signing import Keyring
from streams import topics
from tests.integration.fixtures import joined_stack, settings_for

pytestmark = pytest.mark.integration

EMAIL = "kaede.grep-test@example.jp"
PHONE = "090-5555-0199"
NAME = "Kaede Greptest"
IDENTIFIERS = [EMAIL, PHONE, NAME, "kaede.grep-test"]


def test_no_identifier_leaves_the_topics_producers_wrote_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSR_SEAL_EVENTS", "true")
    settings = settings_for(tmp_path)
    valid = json.dumps(event("grep-ok", "disclosure", {"email": EMAIL, "phone": PHONE}))
    bad_json = f'{{"request_id": "grep-json", "subject": {{"identifiers": {{"email": "{EMAIL}"'
    violation = {**event("grep-schema", "disclosure", {"phone": PHONE}), "kind": PHONE}
    violation["requester"] = {"type": "self", "name": NAME}
    task_topic = topics.tasks_topic("crm")
    malformed_task = json.dumps({"request_id": "grep-task", "identifiers": {"email": EMAIL}})

    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        signer = None
        if settings.require_signatures:
            signer = Keyring.load(settings.signing_keys_path).signer(settings.producer_key_id)
        submitter = Submitter(stack.bootstrap, signer)  # sends in clear: no public key
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES, topics.REJECTED, topics.DEAD_LETTER])
        try:
            for raw in (valid.encode(), bad_json.encode(), json.dumps(violation).encode()):
                submitter.submit(raw)
            submitter.producer.flush()
            producer = KafkaProducer(bootstrap_servers=stack.bootstrap)
            producer.send(task_topic, key=b"grep-task", value=malformed_task.encode())
            producer.flush()
            producer.close()

            def done(seen: list[tuple[str, dict[str, object]]]) -> bool:
                on = {(t, str(b.get("request_id") or b.get("reason_code"))) for t, b in seen}
                return {
                    (topics.RESPONSES, "grep-ok"),
                    (topics.REJECTED, "invalid_json"),  # no request id to read
                    (topics.REJECTED, "grep-schema"),
                    (topics.DEAD_LETTER, "grep-task"),
                } <= on

            seen = watcher.collect(done, timeout_s=120)
            assert done(seen), seen
        finally:
            watcher.close()
            submitter.close()
        rejected = {str(b["reason_code"]): b for t, b in seen if t == topics.REJECTED}
        assert rejected["schema_violation"]["request_id"] == "grep-schema"
        assert rejected["invalid_json"]["digest"] == hashlib.sha256(bad_json.encode()).hexdigest()
        assert all(b["sealed_raw"] for b in rejected.values())  # kept, sealed
        consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap)
        names = sorted(consumer.topics())
        consumer.close()
        records = read_all(stack.bootstrap, names)

    assert topics.REQUESTS in names and topics.DEAD_LETTER in names
    written_to = {topics.REQUESTS, task_topic}
    on_requests = b"".join(r.value or b"" for r in records if r.topic == topics.REQUESTS)
    assert EMAIL.encode() in on_requests  # the grep can find them
    leaks = [
        f"{r.topic}@{r.offset}: {i}"
        for r in records
        if r.topic not in written_to
        for i in IDENTIFIERS
        if i.encode()
        in (r.value or b"") + (r.key or b"") + b"".join(bytes(v) for _, v in r.headers or [])
    ]
    files = [*sorted((tmp_path / "logs").glob("*.log")), *sorted(tmp_path.glob("ledger.db*"))]
    assert any(f.name == "worker-0.log" for f in files) and any(
        f.name == "ledger.db" for f in files
    )
    leaks += [f"{f.name}: {i}" for f in files for i in IDENTIFIERS if i.encode() in f.read_bytes()]
    assert leaks == []
