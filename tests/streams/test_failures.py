"""``streams.failures.each_alone``: a batch that fails is handled again event by event,
so that only the bad events fail."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import OperationalError

from streams.context import Outgoing
from streams.failures import each_alone


class Stage:
    """Handles batches of names, and fails any batch holding ``bad`` (or every batch with
    ``transient``), recording what it was given."""

    def __init__(self, bad: str = "", *, transient: bool = False) -> None:
        self.bad, self.transient = bad, transient
        self.handled: list[list[str]] = []
        self.failed: list[tuple[list[str], type[Exception]]] = []

    def handle(self, batch: Sequence[str]) -> list[Outgoing]:
        self.handled.append(list(batch))
        if self.transient:
            raise OperationalError("BEGIN", {}, Exception("database is locked"))
        if self.bad in batch:
            raise ValueError(f"cannot handle {self.bad}")
        return [Outgoing("out", name.encode(), b"") for name in batch]

    def fail(self, batch: Sequence[str], exc: Exception) -> list[Outgoing]:
        self.failed.append((list(batch), type(exc)))
        return [Outgoing("dead", name.encode(), b"") for name in batch]

    def run(self, batch: list[str]) -> list[tuple[str, str]]:
        out = each_alone(batch, self.handle, self.fail)
        return [(o.topic, (o.key or b"").decode()) for o in out]


def test_a_batch_that_succeeds_is_handled_once() -> None:
    stage = Stage()
    assert stage.run(["a", "b"]) == [("out", "a"), ("out", "b")]
    assert stage.handled == [["a", "b"]] and stage.failed == []


def test_only_the_bad_event_fails_and_the_others_go_on() -> None:
    stage = Stage(bad="b")
    assert stage.run(["a", "b", "c"]) == [("out", "a"), ("dead", "b"), ("out", "c")]
    assert stage.handled == [["a", "b", "c"], ["a"], ["b"], ["c"]]
    assert stage.failed == [(["b"], ValueError)]


def test_a_transient_fault_is_the_whole_batch_s() -> None:
    stage = Stage(transient=True)
    assert stage.run(["a", "b"]) == [("dead", "a"), ("dead", "b")]
    assert stage.handled == [["a", "b"]]  # not split: every event would meet it
    assert stage.failed == [(["a", "b"], OperationalError)]
