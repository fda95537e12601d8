"""Every process of a real stack serves /metrics for the work it did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.broker import free_port
from services.client import Watcher
from services.demo.scenario import HANAKO, JIRO, TARO, event
from services.monitoring.scrape import Series, scrape, scrape_until, value
from streams import topics
from tests.integration.fixtures import joined_stack, settings_for, with_crm

pytestmark = pytest.mark.integration

REQUESTS = [
    event("met-disclosure", "disclosure", TARO),
    event("met-purposes", "purpose_notification", TARO),
    event("met-suspension", "suspension", HANAKO, grounds=["used_beyond_purpose"]),
    event("met-erasure", "erasure", JIRO, grounds=["no_longer_needed"]),
    event("met-refused", "disclosure", TARO, verification={"status": "failed"}),
]
MALFORMED = b'{"schema_version": "1.0", "request_id": "met-malformed", "kind": "forget_me"}'


def completed(series: Series) -> float:
    return sum(v for (name, _), v in series.items() if name == "dsr_requests_completed_total")


def groups_with_lag(series: Series) -> set[str]:
    return {dict(labels)["group"] for name, labels in series if name == "dsr_consumer_group_lag"}


def test_worker_and_runner_serve_what_they_did(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        urls = stack.metrics_urls
        assert set(urls) == {"worker-0", "runner-0", "exporter"}
        assert stack.metrics_file("runner-0").read_text().strip() == urls["runner-0"]
        # counters exist at zero from the start, so increase() sees the first event
        before = scrape(urls["worker-0"])
        assert value(before, "dsr_rejected_events_total", reason_code="schema_violation") == 0
        assert value(before, "dsr_dead_letters_total", source="intake") == 0
        assert value(before, "dsr_dead_letters_total", source=topics.tasks_topic("crm")) == 0
        at_start = scrape(urls["runner-0"])
        assert value(at_start, "dsr_connector_outcomes_total", system="crm", outcome="failed") == 0
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES, topics.REJECTED])
        submitter = stack.submitter()
        submitter.submit_all([json.dumps(e).encode() for e in REQUESTS] + [MALFORMED])
        seen = watcher.collect(
            lambda s: (
                sum(t == topics.RESPONSES for t, _ in s) >= len(REQUESTS)
                and any(t == topics.REJECTED for t, _ in s)
            ),
            90,
        )
        submitter.close()
        watcher.close()
        worker = scrape_until(urls["worker-0"], lambda s: completed(s) >= len(REQUESTS))
        runner = scrape(urls["runner-0"])
        ledger = scrape_until(
            urls["exporter"], lambda s: {"dsr-pipeline", "dsr-connectors"} <= groups_with_lag(s)
        )
    responses: list[dict[str, Any]] = [b for t, b in seen if t == topics.RESPONSES]
    assert len(responses) == len(REQUESTS)

    # the worker: requests, stages, rejections, ledger gauges, lag
    for r in responses:
        labels = {"kind": r["kind"], "regulation": r["regulation"]}
        assert value(worker, "dsr_request_latency_seconds_count", **labels) >= 1, labels
        assert value(worker, "dsr_request_processing_seconds_count", **labels) >= 1, labels
        assert value(worker, "dsr_requests_completed_total", status=r["status"], **labels) >= 1
    refused = {"kind": "disclosure", "regulation": "appi", "status": "refused"}
    assert value(worker, "dsr_requests_completed_total", **refused) == 1
    # a batch of events at a time: at least one call, at most one an event
    assert 1 <= value(worker, "dsr_stage_seconds_count", stage="intake") <= len(REQUESTS) + 1
    assert value(worker, "dsr_stage_seconds_count", stage="fanout") >= 1
    assert value(worker, "dsr_stage_seconds_count", stage="aggregate") >= 1
    assert value(worker, "dsr_rejected_events_total", reason_code="schema_violation") == 1
    # the ledger's gauges are the exporter's alone
    assert value(ledger, "dsr_requests_in_flight", status="fanned_out") == 0
    assert value(ledger, "dsr_tasks_waiting", system="crm") == 0
    assert value(ledger, "dsr_oldest_task_age_seconds", system="crm") == 0
    assert value(ledger, "dsr_deadline_at_risk", regulation="appi", window="overdue") == 0
    assert not [k for k in {**worker, **runner} if k[0].startswith("dsr_deadline_at_risk")]

    # per system: the runner timed and counted each task, the worker counted the rest
    ran = {(s["system"], r["kind"], s["status"]) for r in responses for s in r["systems"]}
    assert any(status == "ok" for _, _, status in ran)
    for system, kind, status in ran:
        if status in ("ok", "failed"):
            assert value(runner, "dsr_connector_call_seconds_count", system=system, kind=kind) >= 1
            assert value(runner, "dsr_connector_outcomes_total", system=system, outcome=status) >= 1
            assert value(runner, "dsr_task_seconds_count", system=system, outcome=status) >= 1
        elif status == "not_applicable":
            assert value(worker, "dsr_connector_outcomes_total", system=system, outcome=status) >= 1
    assert not [key for key in runner if key[0].startswith("dsr_requests_completed")]

    # lag is the broker's, per group and partition, from the exporter alone
    assert not groups_with_lag(worker) and not groups_with_lag(runner)
    assert all(v >= 0 for (name, _), v in ledger.items() if name == "dsr_consumer_group_lag")


BROKEN_DATAMAP = with_crm(
    """
  unreachable:
    connector: http
    identifiers: [email]
    config:
      base_url: "http://127.0.0.1:PORT"
      timeout_s: 1
      endpoints:
        disclose:
          path: "/users/{email}"
""",
    timeout_s=60,
)


def test_runner_counts_and_logs_retries_failures_and_dead_letters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSR_TASK_ATTEMPTS", "2")
    datamap = BROKEN_DATAMAP.replace("PORT", str(free_port()))  # nothing listens: retriable
    with joined_stack(settings_for(tmp_path, datamap), log_dir=tmp_path / "logs") as stack:
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
        submitter = stack.submitter()
        submitter.submit_all([json.dumps(event("met-broken", "disclosure", TARO)).encode()])
        [(_, response)] = watcher.collect(lambda s: len(s) >= 1, 60)
        submitter.close()
        watcher.close()
        runner = scrape(stack.metrics_urls["runner-0"])
        worker = scrape_until(stack.metrics_urls["worker-0"], lambda s: completed(s) >= 1)
    assert response["status"] == "partially_completed"
    assert value(runner, "dsr_connector_outcomes_total", system="crm", outcome="ok") == 1
    assert (
        value(runner, "dsr_connector_outcomes_total", system="unreachable", outcome="failed") == 1
    )
    assert (
        value(runner, "dsr_connector_outcomes_total", system="unreachable", outcome="retried") == 1
    )
    assert (
        value(runner, "dsr_connector_call_seconds_count", system="unreachable", kind="disclosure")
        == 2
    )
    assert value(runner, "dsr_dead_letters_total", source=topics.tasks_topic("unreachable")) == 1
    partial = {"kind": "disclosure", "regulation": "appi", "status": "partially_completed"}
    assert value(worker, "dsr_requests_completed_total", **partial) == 1

    # every line of every process is one JSON object, with no terminal codes
    lines = {
        path.stem: [json.loads(line) for line in path.read_text().splitlines() if line]
        for path in (tmp_path / "logs").glob("*.log")
        if path.stem != "broker"  # Tansu's own
    }
    assert set(lines) == {"worker-0", "runner-0", "exporter"}
    for name, records in lines.items():
        assert records, name
        for record in records:
            assert isinstance(record, dict) and {"ts", "level", "logger", "msg"} <= set(record)
            assert "\x1b" not in json.dumps(record, ensure_ascii=False), record
    runner_log = lines["runner-0"]
    [failed] = [r for r in runner_log if r["msg"] == "task failed"]
    assert failed["level"] == "warning" and failed["system"] == "unreachable"
    assert failed["error_code"] == "retries_exhausted" and failed["error"]
    [retry] = [r for r in runner_log if r["msg"] == "retrying"]
    assert retry["attempt"] == 1 and retry["max_attempts"] == 2 and retry["error"]


def test_the_exporter_reads_lag_from_the_broker_and_outlives_the_workers(tmp_path: Path) -> None:
    """No runner: every task waits on its topic. The broker's committed offsets give the
    connectors group's lag per partition, the ledger the oldest task's age; with the
    worker killed, the exporter still reports the open requests."""
    with joined_stack(settings_for(tmp_path), runners=0, log_dir=tmp_path / "logs") as stack:
        url = stack.metrics_urls["exporter"]
        submitter = stack.submitter()
        submitter.submit_all([json.dumps(e).encode() for e in REQUESTS[:4]])
        submitter.close()

        def tasks_waiting(s: Series) -> float:
            return sum(v for (name, _), v in s.items() if name == "dsr_tasks_waiting")

        def task_lag(s: Series) -> float:
            return sum(
                v
                for (name, labels), v in s.items()
                if name == "dsr_consumer_group_lag" and dict(labels)["group"] == "dsr-connectors"
            )

        series = scrape_until(url, lambda s: tasks_waiting(s) > 0 and task_lag(s) > 0)
        # every task the ledger waits on is a message on a task topic no one has taken
        series = scrape_until(url, lambda s: task_lag(s) == tasks_waiting(s))
        partitions = {
            dict(labels)["partition"]
            for name, labels in series
            if name == "dsr_consumer_group_lag"
            and dict(labels)["topic"] == topics.tasks_topic("crm")
        }
        assert partitions == {str(p) for p in range(topics.PARTITIONS)}
        assert value(series, "dsr_oldest_task_age_seconds", system="crm") > 0

        stack.kill("worker-0")
        after = scrape_until(url, lambda s: tasks_waiting(s) > 0)
        assert value(after, "dsr_requests_in_flight", status="fanned_out") == 4
        assert (
            "dsr_deadline_at_risk",
            frozenset({("regulation", "appi"), ("window", "overdue")}),
        ) in after
