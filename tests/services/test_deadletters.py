import json
from datetime import UTC, datetime

from services.deadletters import DeadLetter, _target, matching
from streams import topics

AT = datetime(2026, 11, 30, tzinfo=UTC)
TASK = {
    "source": topics.tasks_topic("crm"),
    "request_id": "r-1",
    "task_id": "r-1:crm:erasure:0",
    "attempts": 5,
    "error_code": "retries_exhausted",
    "error": "system 'crm': database error: OperationalError",
    "original": json.dumps({"request_id": "r-1", "identifiers": {"email": "a@x.jp"}}),
}
REQUEST = {
    "source": "intake",
    "error": "OperationalError",
    "original": json.dumps({"request_id": "r-2", "subject": {"identifiers": {"email": "b@x.jp"}}}),
    "headers": {"dsr-key-id": "ops", "dsr-signature": "hmac-sha256=00"},
}
FANOUT = {"source": "fanout", "error": "KeyError", "original": "r-3"}
LETTERS = [
    DeadLetter(0, 0, AT, TASK),
    DeadLetter(0, 1, AT, REQUEST),
    DeadLetter(0, 2, AT, FANOUT),
    DeadLetter(0, 3, AT, {"source": topics.tasks_topic("crm"), "original": "{oops"}),
]


def test_each_letter_knows_its_system_and_request() -> None:
    assert [(d.system, d.request_id) for d in LETTERS] == [
        ("crm", "r-1"),
        (None, "r-2"),
        (None, "r-3"),
        ("crm", None),
    ]
    assert LETTERS[0].ref == f"{topics.DEAD_LETTER}:0:0"


def test_letters_are_filtered_by_system_and_request() -> None:
    assert [d.offset for d in matching(LETTERS, system="crm")] == [0, 3]
    assert [d.offset for d in matching(LETTERS, request_id="r-2")] == [1]
    assert [d.offset for d in matching(LETTERS, "crm", "r-1")] == [0]


def test_a_letter_goes_back_where_it_came_from() -> None:
    assert [_target(d) for d in LETTERS] == [
        (topics.tasks_topic("crm"), ""),
        (topics.REQUESTS, ""),
        (topics.ACCEPTED, ""),
        (None, "not a valid task: fix the producer, then resend it"),
    ]


def test_the_listing_never_shows_personal_data() -> None:
    shown = json.dumps([d.summary() for d in LETTERS])
    assert "a@x.jp" not in shown and "b@x.jp" not in shown
    assert LETTERS[0].summary()["source"] == "crm"
    assert LETTERS[0].summary()["error_code"] == "retries_exhausted"
