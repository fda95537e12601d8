import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from services.crypto import LocalKeyProvider
from services.crypto.sealing import Sealer
from services.deadletters import (
    Letter,
    _target,
    letter,
    listed,
    record,
    resent_headers,
    summary,
)
from services.ledger import Ledger
from services.signing import Keyring, SignatureError
from streams import topics
from streams.records import DeadLetterEvent, dump
from tests.fixtures.ledger_rows import DEADLINE, event

AT_MS = 1_795_000_000_000
REQUEST_ORIGINAL = json.dumps(
    {"request_id": "r-2", "subject": {"identifiers": {"email": "b@x.jp"}}}
)
REQUEST_HEADERS = {"dsr-key-id": "ops", "dsr-signature": "hmac-sha256=00"}
REQUEST_DETAIL = "UNIQUE constraint failed: b@x.jp"
PERSONAL = ["a@x.jp", "b@x.jp", "c@x.jp"]


def bodies(sealer: Sealer | None) -> list[DeadLetterEvent]:
    """A task out of attempts, a request, a fan-out id, a poison result, a malformed task:
    as the runner and the worker write them (``deadletters.letter``)."""
    task = json.dumps({"request_id": "r-1", "identifiers": {"email": "a@x.jp"}}).encode()
    return [
        letter(
            topics.tasks_topic("crm"),
            "system 'crm': database error: OperationalError",
            task,
            sealer=sealer,
            attempts=5,
            request_id="r-1",
            task_id="r-1:crm:erasure:0",
            error_code="retries_exhausted",
        ),
        letter(
            "intake",
            "OperationalError",
            REQUEST_ORIGINAL.encode(),
            sealer=sealer,
            attempts=1,
            headers=REQUEST_HEADERS,
            detail=REQUEST_DETAIL,
            request_id="r-2",
        ),
        letter("fanout", "KeyError", b"r-3", sealer=sealer, attempts=1, request_id="r-3"),
        letter("aggregate", "invalid task result", b"{oops c@x.jp", sealer=sealer, attempts=1),
        letter(topics.tasks_topic("crm"), "", b"{oops", sealer=sealer, attempts=0),
    ]


def raw(body: DeadLetterEvent) -> bytes:
    return dump(body)


def test_a_letter_carries_a_digest_and_nothing_personal_in_clear(tmp_path: Path) -> None:
    sealer = Sealer(LocalKeyProvider(tmp_path / "keys"))
    for body in [*bodies(sealer), *bodies(None)]:
        assert not [p for p in PERSONAL if p in raw(body).decode()]
    request = bodies(sealer)[1]
    assert request.digest == hashlib.sha256(REQUEST_ORIGINAL.encode()).hexdigest()
    assert Letter.parse(raw(request), AT_MS).kept(sealer) == {
        "original": REQUEST_ORIGINAL,
        "headers": REQUEST_HEADERS,
        "detail": REQUEST_DETAIL,
    }
    # Only the pipeline's private key opens it.
    other = Sealer(LocalKeyProvider(tmp_path / "other-keys"))
    assert Letter.parse(raw(request), AT_MS).kept(other) is None


@pytest.fixture
def sealed(tmp_path: Path) -> Iterator[Ledger]:
    """A ledger that seals what it keeps, as the worker's does."""
    ledger = Ledger(
        f"sqlite:///{tmp_path / 'ledger.db'}", Sealer(LocalKeyProvider(tmp_path / "keys"))
    )
    ledger.migrate()
    yield ledger
    ledger.close()


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Ledger]:
    """A ledger with no data keys (DSR_SEAL_EVENTS=false)."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'plain.db'}")
    ledger.migrate()
    yield ledger
    ledger.close()


def test_a_letter_that_is_not_a_dead_letter_is_kept_saying_so() -> None:
    for value in (b"not json", b'{"source": "intake"}', json.dumps([1, 2]).encode()):
        parsed = Letter.parse(value, AT_MS)
        assert parsed.event.error.startswith("the dead letter itself is not valid")
        assert parsed.event.digest == hashlib.sha256(value).hexdigest()
        assert parsed.row().reason_code.startswith("the_dead_letter_itself_is_not_valid")


def test_each_letter_knows_its_system_request_and_reason() -> None:
    letters = [Letter.parse(raw(b), AT_MS) for b in bodies(None)]
    assert [(d.system, d.request_id, d.task_id) for d in letters] == [
        ("crm", "r-1", "r-1:crm:erasure:0"),
        (None, "r-2", None),
        (None, "r-3", None),
        (None, None, None),
        ("crm", None, None),
    ]
    assert [d.reason_code for d in letters] == [
        "retries_exhausted",
        "operationalerror",
        "keyerror",
        "invalid_task_result",
        "invalid_task",
    ]


def test_a_redelivered_copy_is_the_same_letter_and_a_new_failure_is_another() -> None:
    task, _, fanout, *_ = bodies(None)
    first = Letter.parse(raw(task), AT_MS)
    assert Letter.parse(raw(task), AT_MS).letter_id == first.letter_id
    assert Letter.parse(raw(task), AT_MS + 1).letter_id != first.letter_id  # failed again later
    assert Letter.parse(raw(fanout), AT_MS).letter_id != first.letter_id


def test_letters_are_kept_once_and_listed_oldest_first(sealed: Ledger) -> None:
    letters = bodies(sealed.sealer)
    for i, body in enumerate(letters):
        assert record(sealed, raw(body), AT_MS + i, b"k") is True
    assert record(sealed, raw(letters[0]), AT_MS) is False  # redelivered

    assert [d.request_id for d in listed(sealed)] == ["r-1", "r-2", "r-3", None, None]
    assert [d.task_id for d in listed(sealed, system="crm")] == ["r-1:crm:erasure:0", None]
    assert [d.source for d in listed(sealed, request_id="r-2")] == ["intake"]
    [task] = listed(sealed, request_id="r-1")
    assert summary(task) | {"letter": "-"} == {
        "letter": "-",
        "at": "2026-11-18T11:06:40+00:00",
        "source": "crm",
        "request_id": "r-1",
        "attempts": 5,
        "error_code": "retries_exhausted",
        "error": "system 'crm': database error: OperationalError",
        "redriven_at": None,
    }
    actions = [e.action for e in sealed.timeline("r-1")]
    assert actions == ["dead_lettered"]


def test_nothing_personal_is_kept_in_clear_but_the_original_opens(sealed: Ledger) -> None:
    for i, body in enumerate(bodies(sealed.sealer)):
        record(sealed, raw(body), AT_MS + i)
    with sealed.engine.connect() as conn:
        stored = repr(conn.execute(text("SELECT * FROM dead_letters")).all())
        stored += repr(conn.execute(text("SELECT * FROM audit_log")).all())
    assert not [p for p in PERSONAL if p in stored]
    [request] = listed(sealed, request_id="r-2")
    assert sealed.dead_letter_kept(request) == {
        "original": REQUEST_ORIGINAL,
        "headers": REQUEST_HEADERS,
        "detail": REQUEST_DETAIL,
    }
    # A letter with no request to key it by keeps nothing: it cannot be sealed.
    [poison] = [d for d in listed(sealed) if d.source == "aggregate"]
    assert poison.sealed is None and sealed.dead_letter_kept(poison) is None


def test_a_letter_of_a_shredded_request_keeps_nothing_and_makes_no_key(
    sealed: Ledger,
) -> None:
    assert sealed.sealer is not None
    keys = sealed.sealer.data_keys
    sealed.admit(event("r-2"), "proceed", None, DEADLINE)
    assert keys.destroy("r-2")
    letters = bodies(sealed.sealer)
    for i, body in enumerate(letters):
        assert record(sealed, raw(body), AT_MS + i) is True

    [request] = listed(sealed, request_id="r-2")
    assert request.sealed is None and sealed.dead_letter_kept(request) is None
    # Only the letters of requests never admitted made their keys.
    assert sorted(k.key_id for k in keys.list_keys()) == ["r-1", "r-3"]
    [task] = listed(sealed, request_id="r-1")
    assert sealed.dead_letter_kept(task) is not None


def test_without_data_keys_the_original_is_not_kept(plain: Ledger) -> None:
    for i, body in enumerate(bodies(None)):
        record(plain, raw(body), AT_MS + i)
    assert [d.sealed for d in listed(plain)] == [None] * 5
    with plain.engine.connect() as conn:
        stored = repr(conn.execute(text("SELECT * FROM dead_letters")).all())
    assert not [p for p in PERSONAL if p in stored]


def test_a_letter_goes_back_where_it_came_from(sealed: Ledger, plain: Ledger) -> None:
    assert sealed.sealer is not None
    for i, body in enumerate(bodies(sealed.sealer)):
        record(sealed, raw(body), AT_MS + i)
        record(plain, raw(body), AT_MS + i)
    assert [_target(d) for d in listed(sealed)] == [
        (topics.ACCEPTED, ""),  # the reopened task goes out again from fan-out
        (topics.REQUESTS, ""),
        (topics.ACCEPTED, ""),
        (None, "its original event was not kept (no data key to seal it under)"),
        (None, "not a valid task: fix the producer, then resend it"),
    ]
    # A task is rebuilt from the ledger; an event needs its original.
    assert [_target(d)[0] for d in listed(plain)] == [topics.ACCEPTED, None, None, None, None]


def test_a_letter_is_claimed_for_redrive_once(sealed: Ledger) -> None:
    record(sealed, raw(bodies(sealed.sealer)[1]), AT_MS)
    [letter] = listed(sealed)
    assert sealed.claim_redrive(letter.id, "r-2", "intake") is None
    assert sealed.claim_redrive(letter.id, "r-2", "intake") == "already redriven"
    assert sealed.claim_redrive("no-such-letter", None, "intake") == (
        "the ledger has no such letter"
    )
    [again] = listed(sealed)
    assert again.redriven_at is not None
    assert _target(again) == (None, "already redriven")
    assert summary(again)["redriven_at"] is not None


def test_a_redriven_signed_event_is_signed_again_by_the_operators_key() -> None:
    """An intake letter redriven after the freshness window would be stale with its own
    signature: it goes back signed now, by the operator's key, and verifies."""
    ring = Keyring({"ops": b"o" * 32, "crm-export": b"c" * 32})
    original = json.dumps({"request_id": "r-9", "kind": "erasure"})
    an_hour_ago = time.time() - 3600
    old = ring.signer("crm-export").headers(original.encode(), an_hour_ago)
    kept = {"original": original, "headers": {k: v.decode() for k, v in old}, "error": "x"}
    kept["headers"]["traceparent"] = "00-abc-01"
    with pytest.raises(SignatureError):
        ring.verify(json.loads(original), old)
    again = resent_headers(kept, ring.signer("ops"))
    assert ring.verify(json.loads(original), again) == "ops"
    assert ("traceparent", b"00-abc-01") in again
    assert [k for k, _ in again].count("dsr-signature") == 1
    # without an operator's key, or unsigned, the headers go back as they were
    assert resent_headers(kept, None) == [(k, v.encode()) for k, v in kept["headers"].items()]
    unsigned = {"original": original, "headers": {"traceparent": "00-abc-01"}}
    assert resent_headers(unsigned, ring.signer("ops")) == [("traceparent", b"00-abc-01")]
