"""Metrics hooks on real handlers and a real ledger: the right series, the right labels."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import update

from services import deadletters, monitoring
from services.demo.scenario import HANAKO, TARO, event
from services.ledger.models import Request
from services.monitoring.ledger import LedgerCollector
from services.monitoring.metrics import REGISTRY
from services.notify import OutboxNotifier
from streams import topics
from streams.agents import aggregate, fanout, intake, notices, respond
from streams.context import Outgoing, Pipeline
from streams.records import TaskResult, utcnow
from tests.streams.agents.fixtures import run_tasks

Handler = Callable[[Pipeline, Any], list[Outgoing]]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """How much a series moved while the block ran."""

    def __init__(self, name: str, **labels: str) -> None:
        self.name, self.labels = name, labels

    def __enter__(self) -> Delta:
        self.before = sample(self.name, **self.labels)
        return self

    def __exit__(self, *exc: object) -> None:
        self.value = sample(self.name, **self.labels) - self.before


def play(p: Pipeline, stage: str, handler: Handler, value: Any) -> list[Outgoing]:
    """What ``streams.app`` does with one event: time the handler, count what leaves."""
    with monitoring.observe_stage(stage):
        out = handler(p, value)
    count(out)
    return out


def count(out: list[Outgoing]) -> None:
    """What ``streams.app`` counts of what it sends: each record the first time it goes."""
    for o in out:
        if o.record is not None and not o.resend:
            monitoring.record_sent(o.record)


def complete(p: Pipeline, **kw: Any) -> list[Outgoing]:
    """Intake, fan-out, every wave of tasks, aggregation; return every message sent."""
    sent = play(p, "intake", intake.handle_request, json.dumps(event(**kw)).encode())
    if any(o.topic == topics.ACCEPTED for o in sent):
        out = play(p, "fanout", fanout.handle_accepted, kw["request_id"])
        sent += out
        while results := run_tasks(p, out):
            out = [o for raw in results for o in play(p, "aggregate", aggregate.handle_result, raw)]
            sent += out
    return sent


@pytest.fixture
def watched(pipeline: Pipeline) -> Iterator[LedgerCollector]:
    collector = LedgerCollector(pipeline.ledger, sorted(pipeline.datamap.systems))
    REGISTRY.register(collector)
    yield collector
    REGISTRY.unregister(collector)


def gauges(ledger_collector: LedgerCollector) -> Callable[..., float | None]:
    registry = CollectorRegistry()
    registry.register(ledger_collector)
    return lambda name, **labels: registry.get_sample_value(name, labels)


# -- request and stage series ---------------------------------------------------------
def test_each_handler_call_is_timed_under_its_stage(pipeline: Pipeline) -> None:
    with (
        Delta("dsr_stage_seconds_count", stage="intake") as intakes,
        Delta("dsr_stage_seconds_count", stage="fanout") as fanouts,
        Delta("dsr_stage_seconds_count", stage="aggregate") as aggregates,
    ):
        complete(pipeline, request_id="st-1", kind="disclosure", identifiers=TARO)
    assert intakes.value == 1
    assert fanouts.value == 1
    assert aggregates.value >= 2  # crm and search_index, then the systems crm unlocked


def test_a_completed_response_moves_completion_latency_and_processing(pipeline: Pipeline) -> None:
    labels = {"kind": "disclosure", "regulation": "appi"}
    with (
        Delta("dsr_requests_completed_total", status="completed", **labels) as completed,
        Delta("dsr_request_latency_seconds_count", **labels) as latency,
        Delta("dsr_request_processing_seconds_count", **labels) as processing,
        Delta("dsr_request_latency_seconds_sum", **labels) as latency_sum,
    ):
        sent = complete(pipeline, request_id="c-1", kind="disclosure", identifiers=TARO)
    [response] = [json.loads(o.value) for o in sent if o.topic == topics.RESPONSES]
    assert response["status"] == "completed"
    assert (completed.value, latency.value, processing.value) == (1, 1, 1)
    assert latency_sum.value >= 0


def test_latency_comes_from_received_at_even_days_ago(pipeline: Pipeline) -> None:
    received = (utcnow() - timedelta(days=2)).isoformat()
    labels = {"kind": "suspension", "regulation": "appi"}
    with (
        Delta("dsr_request_latency_seconds_bucket", le="86400.0", **labels) as within_a_day,
        Delta("dsr_request_latency_seconds_bucket", le="259200.0", **labels) as within_3_days,
        Delta("dsr_request_processing_seconds_bucket", le="600.0", **labels) as processing,
    ):
        complete(
            pipeline,
            request_id="old-1",
            kind="suspension",
            identifiers=HANAKO,
            grounds=["used_beyond_purpose"],
            received_at=received,
        )
    assert (within_a_day.value, within_3_days.value, processing.value) == (0, 1, 1)


def test_a_response_sent_twice_counts_once(pipeline: Pipeline) -> None:
    complete(pipeline, request_id="twice-1", kind="disclosure", identifiers=TARO)
    with Delta(
        "dsr_requests_completed_total", kind="disclosure", regulation="appi", status="completed"
    ) as completed:
        again = respond.finish(pipeline, "twice-1")  # not marked published: sent again
        assert [o.resend for o in again if o.topic == topics.RESPONSES] == [True]
        count(again)
    assert completed.value == 0


def test_refusal_counts_as_a_refused_completion(pipeline: Pipeline) -> None:
    with Delta(
        "dsr_requests_completed_total", kind="disclosure", regulation="appi", status="refused"
    ) as refused:
        complete(
            pipeline,
            request_id="ref-1",
            kind="disclosure",
            identifiers=TARO,
            verification={"status": "failed"},
        )
    assert refused.value == 1


def test_not_applicable_systems_are_counted_once_per_request(pipeline: Pipeline) -> None:
    sent = complete(pipeline, request_id="na-1", kind="disclosure", identifiers=TARO)
    [response] = [json.loads(o.value) for o in sent if o.topic == topics.RESPONSES]
    not_applicable = [s["system"] for s in response["systems"] if s["status"] == "not_applicable"]
    assert not_applicable, "the demo data map has a system that does not disclose"
    with ExitStack() as stack:
        deltas = [
            stack.enter_context(
                Delta("dsr_connector_outcomes_total", system=s, outcome="not_applicable")
            )
            for s in not_applicable
        ]
        complete(pipeline, request_id="na-2", kind="disclosure", identifiers=TARO)
    assert [d.value for d in deltas] == [1] * len(not_applicable)


def test_rejected_events_are_counted_by_reason_code(pipeline: Pipeline) -> None:
    with (
        Delta("dsr_rejected_events_total", reason_code="invalid_json") as invalid_json,
        Delta("dsr_rejected_events_total", reason_code="schema_violation") as schema,
    ):
        play(pipeline, "intake", intake.handle_request, b"{not json")
        play(pipeline, "intake", intake.handle_request, b'{"request_id": "bad-1"}')
        play(pipeline, "intake", intake.handle_request, b"[]")
    assert (invalid_json.value, schema.value) == (1, 2)


def test_dead_letters_are_counted_by_source() -> None:
    letter = deadletters.letter("aggregate", "invalid task result", b"{}", sealer=None, attempts=1)
    with Delta("dsr_dead_letters_total", source="aggregate") as dead:
        monitoring.record_sent(letter)
    assert dead.value == 1


def test_other_topics_are_not_counted() -> None:
    before = generate_latest(REGISTRY)
    monitoring.record_sent(result("ok"))  # a task's result: the runner's hooks count it
    after = generate_latest(REGISTRY)
    strip = lambda text: [  # noqa: E731 - process series move on their own
        line for line in text.decode().splitlines() if line.startswith("dsr_")
    ]
    assert strip(before) == strip(after)


# -- connector runner hooks -------------------------------------------------------------
def result(status: str, system: str = "crm") -> TaskResult:
    return TaskResult(
        request_id="r-1",
        task_id="r-1:crm:disclosure:0",
        system=system,
        kind="disclosure",
        status=status,  # type: ignore[arg-type]
        started_at=utcnow(),
    )


def test_runner_hooks_count_ok_failed_and_each_retry() -> None:
    with (
        Delta("dsr_connector_outcomes_total", system="crm", outcome="ok") as ok,
        Delta("dsr_connector_outcomes_total", system="crm", outcome="failed") as failed,
        Delta("dsr_connector_outcomes_total", system="crm", outcome="retried") as retried,
    ):
        monitoring.record_retry("crm")
        monitoring.record_retry("crm")
        monitoring.record_task_result(result("ok"))
        monitoring.record_task_result(result("failed"))
    assert (ok.value, failed.value, retried.value) == (1, 1, 2)


def test_connector_calls_are_timed_even_when_they_raise() -> None:
    with Delta("dsr_connector_call_seconds_count", system="crm", kind="erasure") as calls:
        with monitoring.observe_connector_call("crm", "erasure"):
            pass
        with pytest.raises(RuntimeError), monitoring.observe_connector_call("crm", "erasure"):
            raise RuntimeError("the system is down")
    assert calls.value == 2


# -- labels never carry personal data or request ids -------------------------------------
def test_no_label_holds_a_request_id_or_an_identifier(
    pipeline: Pipeline, watched: LedgerCollector
) -> None:
    rid, email = "secret-req-4711", "taro@example.jp"
    complete(pipeline, request_id=rid, kind="disclosure", identifiers={"email": email})
    complete(
        pipeline,
        request_id=f"{rid}-held",
        kind="disclosure",
        identifiers={"email": email},
        verification={"status": "pending"},
    )
    play(
        pipeline, "intake", intake.handle_request, json.dumps({"request_id": f"{rid}-bad"}).encode()
    )
    original = json.dumps({"request_id": rid, "email": email}).encode()
    dead = deadletters.letter("aggregate", "x", original, sealer=None, attempts=1, request_id=rid)
    monitoring.record_sent(dead)
    monitoring.record_task_result(result("ok"))
    text = generate_latest(REGISTRY).decode()
    assert 'dsr_requests_completed_total{kind="disclosure"' in text  # the run was seen
    assert 'dsr_requests_in_flight{status="held_verification"}' in text
    assert rid not in text
    assert email not in text and "example.jp" not in text


# -- ledger-backed gauges ---------------------------------------------------------------
def submit(p: Pipeline, request_id: str, **kw: Any) -> None:
    kw.setdefault("kind", "disclosure")
    kw.setdefault("identifiers", TARO)
    play(p, "intake", intake.handle_request, json.dumps(event(request_id, **kw)).encode())


def test_in_flight_counts_open_requests_by_status_and_hold(pipeline: Pipeline) -> None:
    read = gauges(LedgerCollector(pipeline.ledger))
    assert [read("dsr_requests_in_flight", status=s) for s in ("accepted", "held_fee")] == [0, 0]
    submit(pipeline, "acc-1")
    submit(pipeline, "acc-2")
    submit(pipeline, "ver-1", verification={"status": "pending"})
    submit(pipeline, "fee-1", fee={"required": True, "paid": False})
    submit(pipeline, "agent-1", requester={"type": "appointed_agent"})
    play(pipeline, "fanout", fanout.handle_accepted, "acc-2")
    assert {
        s: read("dsr_requests_in_flight", status=s)
        for s in ("held_verification", "held_fee", "held_other", "accepted", "fanned_out")
    } == {"held_verification": 1, "held_fee": 1, "held_other": 1, "accepted": 1, "fanned_out": 1}


def test_tasks_waiting_counts_pending_tasks_per_system(pipeline: Pipeline) -> None:
    read = gauges(LedgerCollector(pipeline.ledger, sorted(pipeline.datamap.systems)))
    assert read("dsr_tasks_waiting", system="crm") == 0
    for rid in ("w-1", "w-2"):
        submit(pipeline, rid)
        play(pipeline, "fanout", fanout.handle_accepted, rid)
    assert read("dsr_tasks_waiting", system="crm") == 2  # the CRM lookups of the resolve phase
    assert read("dsr_tasks_waiting", system="search_index") == 0  # acted on once resolved
    assert read("dsr_tasks_waiting", system="orders") == 0  # waits for crm's customer_id


def test_deadline_at_risk_counts_overdue_and_due_soon(pipeline: Pipeline) -> None:
    read = gauges(LedgerCollector(pipeline.ledger))
    for rid in ("dl-overdue", "dl-2d", "dl-later", "dl-done"):
        submit(pipeline, rid)
    complete(pipeline, request_id="dl-done-2", kind="disclosure", identifiers=TARO)
    now = utcnow()
    for rid, deadline in (
        ("dl-overdue", now - timedelta(days=1)),
        ("dl-2d", now + timedelta(days=2)),
        ("dl-done-2", now - timedelta(days=3)),  # completed: not at risk any more
    ):
        with pipeline.ledger.session() as s:
            s.execute(update(Request).where(Request.request_id == rid).values(deadline_at=deadline))
    windows = {
        w: read("dsr_deadline_at_risk", regulation="appi", window=w)
        for w in ("overdue", "1d", "3d", "7d")
    }
    assert windows == {"overdue": 1, "1d": 0, "3d": 1, "7d": 1}
    assert read("dsr_deadline_at_risk", regulation="gdpr", window="overdue") == 0


def test_rule_14_an_appi_request_open_two_weeks_after_arrival_raises_the_art_39_alert(
    pipeline: Pipeline,
) -> None:
    read = gauges(LedgerCollector(pipeline.ledger))
    now = utcnow()
    arrivals = {
        "lr-15d": ("appi", now - timedelta(days=15)),
        "lr-13d": ("appi", now - timedelta(days=13)),
        "lr-gdpr": ("gdpr", now - timedelta(days=20)),  # no Art. 39 outside the APPI
    }
    for rid, (regulation, received) in arrivals.items():
        submit(pipeline, rid, regulation=regulation, received_at=received.isoformat())
    complete(
        pipeline,
        request_id="lr-done",
        kind="disclosure",
        identifiers=TARO,
        received_at=(now - timedelta(days=20)).isoformat(),
    )  # answered: no risk any more
    assert read("dsr_litigation_risk", regulation="appi") == 1
    assert read("dsr_litigation_risk", regulation="gdpr") is None  # not reported at all


def test_rule_15_a_ccpa_principal_told_nothing_in_10_business_days_is_overdue(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """Told means an acknowledgement or the response notice sent; an open request, or
    one answered whose notice did not go, counts until then."""
    read = gauges(LedgerCollector(pipeline.ledger))
    long_ago = (utcnow() - timedelta(days=20)).isoformat()
    owed = {}
    for rid, regulation, received in [
        ("ack-late", "ccpa", long_ago),
        ("ack-new", "ccpa", (utcnow() - timedelta(hours=1)).isoformat()),
        ("ack-told", "ccpa", long_ago),
        ("ack-appi", "appi", long_ago),  # the APPI asks for no acknowledgement
    ]:
        event_ = event(rid, "disclosure", TARO, regulation=regulation, received_at=received)
        sent = play(pipeline, "intake", intake.handle_request, json.dumps(event_).encode())
        owed[rid] = [o.value for o in sent if o.topic == topics.NOTICES]
    for rid in ("ack-answered", "ack-answered-untold"):
        sent = complete(
            pipeline,
            request_id=rid,
            kind="disclosure",
            identifiers=TARO,
            regulation="ccpa",
            received_at=long_ago,
        )
        owed[rid] = [o.value for o in sent if o.topic == topics.NOTICES]
    assert owed["ack-appi"] == []
    assert read("dsr_acknowledgements_unsent", regulation="ccpa", window="any") == 5
    assert read("dsr_acknowledgements_unsent", regulation="ccpa", window="overdue") == 4
    # the notices agent sends one's acknowledgement, and another's response notice only
    outbox = OutboxNotifier(tmp_path / "outbox", sender="privacy@example.jp")
    response_only = [raw for raw in owed["ack-answered"] if b'"response"' in raw]
    for raws in (owed["ack-told"], response_only):
        asyncio.run(notices.handle_notices(pipeline, outbox, raws, "the desk"))
    assert read("dsr_acknowledgements_unsent", regulation="ccpa", window="any") == 3
    assert read("dsr_acknowledgements_unsent", regulation="ccpa", window="overdue") == 2
    assert read("dsr_acknowledgements_unsent", regulation="appi", window="any") is None


# -- the /metrics endpoint ---------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_is_off_without_a_port() -> None:
    assert monitoring.serve(0) is None


def test_serve_exposes_the_registry_on_loopback() -> None:
    served = monitoring.serve(_free_port())
    assert served is not None
    server, _ = served
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        assert "# TYPE dsr_stage_seconds histogram" in text
        assert "# TYPE dsr_connector_outcomes_total counter" in text
        assert monitoring.serve(server.server_port) is None  # taken: logged, not raised
    finally:
        server.shutdown()
        server.server_close()
