"""Parking: a request whose handling raises is set aside in the ledger, with why, and
released by an operator; nothing else moves it meanwhile."""

from __future__ import annotations

import errno
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from services.demo.scenario import HANAKO, TARO, event
from services.ledger import RequestStatus
from services.ledger.models import Request
from services.monitoring.overview import overview
from services.status import status_from
from streams import parking, topics
from streams.agents import aggregate, fanout, intake
from streams.context import Pipeline
from streams.records import utcnow
from tests.streams.agents.fixtures import body, run_tasks, to


def submit(p: Pipeline, request_id: str, identifiers: dict[str, str]) -> None:
    raw = json.dumps(event(request_id, "disclosure", identifiers)).encode()
    assert to(topics.ACCEPTED, intake.handle_request(p, raw))


def block_package(home: Path, request_id: str) -> Path:
    """A stray file where the request's package directory goes: storing it fails."""
    stray = home / "packages" / "responses" / request_id
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("left here by hand")
    return stray


def results_until_raise(p: Pipeline, request_id: str) -> Exception:
    """Drive ``request_id`` until a handler raises, as the aggregate agent would."""
    out = fanout.handle_accepted(p, request_id)
    while results := run_tasks(p, out):
        out = []
        for raw in results:
            try:
                out += aggregate.handle_result(p, raw)
            except Exception as exc:  # noqa: BLE001 - what the worker catches
                return exc
    raise AssertionError("no handler raised")


def test_a_request_whose_package_cannot_be_stored_is_parked_with_type_and_place(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    submit(pipeline, "park-1", TARO)
    submit(pipeline, "other-1", HANAKO)  # a look-alike neighbour, left alone
    block_package(tmp_path, "park-1")
    exc = results_until_raise(pipeline, "park-1")
    assert not parking.is_transient(exc)

    assert parking.park(pipeline, "aggregate", "park-1", exc)
    row = pipeline.ledger.request("park-1")
    assert row is not None and row.status == RequestStatus.PARKED
    assert row.hold_reason == type(exc).__name__ and row.completed_at is None
    [entry] = [e for e in pipeline.ledger.timeline("park-1") if e.action == "parked"]
    assert entry.detail["stage"] == "aggregate" and entry.detail["was"] == "fanned_out"
    assert entry.detail["where"].startswith(("services/", "streams/"))
    # only the type and the place: never the message, which may quote anything
    audit = json.dumps([e.detail for e in pipeline.ledger.timeline("park-1")])
    assert str(exc) not in audit and TARO["email"] not in audit
    neighbour = pipeline.ledger.request("other-1")
    assert neighbour is not None and neighbour.status == RequestStatus.ACCEPTED

    # parked once: a second failure changes nothing, and nothing completes it
    assert not parking.park(pipeline, "sweeper", "park-1", exc)
    assert not pipeline.ledger.complete("park-1", "completed", {"reasons": []}, 1)
    assert fanout.handle_accepted(pipeline, "park-1") == []
    assert aggregate.advance(pipeline, "park-1") == []
    assert "park-1" not in pipeline.ledger.overdue_fan_outs()


def test_a_released_request_completes_once_its_cause_is_fixed(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    submit(pipeline, "park-2", TARO)
    stray = block_package(tmp_path, "park-2")
    parking.park(pipeline, "aggregate", "park-2", results_until_raise(pipeline, "park-2"))

    stray.unlink()  # the operator fixes the cause
    with pipeline.ledger.session() as s:  # parked for long: its timeout has passed
        past = utcnow() - timedelta(hours=1)
        s.execute(update(Request).where(Request.request_id == "park-2").values(timeout_at=past))
    released = pipeline.ledger.release_parked("park-2", "ops", timedelta(seconds=60))
    assert released == ("released", "fanned_out")
    assert "park-2" not in pipeline.ledger.overdue_fan_outs()  # the sweeper gives it time
    assert pipeline.ledger.release_parked("park-2", "ops") == ("not_parked", "fanned_out")
    assert pipeline.ledger.release_parked("nobody", "ops") == ("unknown_request", None)
    # what `dsr park release` sends on: the request id, to fan-out
    out = fanout.handle_accepted(pipeline, "park-2")
    [response] = to(topics.RESPONSES, out)
    assert body(response)["status"] == "completed"
    assert (tmp_path / "packages" / "responses" / "park-2").is_dir()
    actions = [(e.actor, e.action) for e in pipeline.ledger.timeline("park-2")]
    assert ("worker", "parked") in actions and ("operator:ops", "unparked") in actions


def test_status_and_dashboard_show_a_parked_request(pipeline: Pipeline, tmp_path: Path) -> None:
    submit(pipeline, "park-3", TARO)
    block_package(tmp_path, "park-3")
    exc = results_until_raise(pipeline, "park-3")
    parking.park(pipeline, "aggregate", "park-3", exc)

    report = status_from(pipeline.ledger, "park-3")
    assert report is not None and report["status"] == "parked"
    assert report["parked"]["error_code"] == type(exc).__name__
    assert report["parked"]["stage"] == "aggregate" and report["parked"]["where"]

    view = overview(pipeline.ledger)
    assert view["parked"]["total"] == 1
    assert [r["request_id"] for r in view["parked"]["requests"]] == ["park-3"]
    [row] = [r for r in view["in_flight"]["requests"] if r["request_id"] == "park-3"]
    assert row["waiting_on"].startswith(f"parked: {type(exc).__name__}")


def test_only_the_requests_own_errors_park_it() -> None:
    from aiokafka.errors import KafkaConnectionError

    from services.delivery.storage import StorageError, StorageUnavailable
    from services.notify.errors import NotifyFatal, NotifyRetriable
    from streams.agents.decode import PoisonEvent

    locked = OperationalError("SELECT 1", {}, Exception("database is locked"))
    s3_away = StorageUnavailable("put s3://b/k failed after 5 attempts", attempts=5)
    full = OSError(errno.ENOSPC, "No space left on device")  # the disk's, not the request's
    read_only = OSError(errno.EROFS, "Read-only file system")
    away = (locked, KafkaConnectionError(), s3_away, full, read_only)
    assert all(parking.is_transient(exc) for exc in away)
    # waited out (transient), or dead-lettered as the event's own fault: never parked
    for exc in (*away, PoisonEvent("bad", ""), NotifyRetriable("421")):
        assert not parking.parks(exc), exc
    assert not parking.parks(NotifyFatal("550"))
    refused = StorageError("put s3://b/k failed: AccessDenied")  # not S3 away: the request's
    for exc in (KeyError("failed"), NotADirectoryError(20, "x"), RecursionError(), refused):
        assert parking.parks(exc) and not parking.is_transient(exc), exc


def test_where_names_the_raising_line_of_our_code() -> None:
    def boom() -> None:
        raise ValueError("taro@example.jp")  # a message that must not be kept

    with pytest.raises(ValueError) as info:
        boom()
    why = parking.reason(info.value)
    assert why["error_code"] == "ValueError"
    assert why["where"].startswith("tests/streams/agents/test_parking.py:")
    assert why["where"].endswith("in boom") and "taro" not in json.dumps(why)
