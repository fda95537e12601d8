"""Every Prometheus metric of the pipeline, defined once, and the hooks that move them.

Call sites are one line each and live in the wiring (``streams/app.py``, the
connector runner's plumbing), never in the handlers or the connectors.

Labels are low-cardinality on purpose: kind, regulation, status, stage,
system, outcome, reason code, topic and consumer group. A request id, an
identifier or any other value taken from a subject never becomes a label.

| metric | type | labels |
|---|---|---|
| dsr_request_latency_seconds | histogram | kind, regulation: received_at → response |
| dsr_request_processing_seconds | histogram | kind, regulation: intake → response |
| dsr_stage_seconds | histogram | stage: a handler call (a batch; decisions, provisions: an event) |
| dsr_connector_call_seconds | histogram | system, kind: one connector call (one attempt) |
| dsr_task_seconds | histogram | system, outcome: a task, first call → result, retries included |
| dsr_connector_outcomes_total | counter | system, outcome |
| dsr_requests_completed_total | counter | kind, regulation, status |
| dsr_requests_in_flight | gauge | status (from the ledger, at scrape time) |
| dsr_tasks_waiting | gauge | system (from the ledger, at scrape time) |
| dsr_oldest_task_age_seconds | gauge | system: its oldest waiting task's age (from the ledger) |
| dsr_deadline_at_risk | gauge | regulation, window (from the ledger, at scrape time) |
| dsr_redrives_total | counter | system: failed tasks redriven (from the ledger's audit) |
| dsr_litigation_risk | gauge | regulation (APPI Art. 39; from the ledger, at scrape time) |
| dsr_acknowledgements_unsent | gauge | regulation, window: arrival not yet told (from the ledger) |
| dsr_dead_letters_total | counter | source |
| dsr_requests_parked_total | counter | stage, error: requests set aside because handling raised |
| dsr_stage_waits_total | counter | stage: a batch's attempt failed, the infrastructure away |
| dsr_rejected_events_total | counter | reason_code |
| dsr_provisions_refused_total | counter | reason_code: provision records the ledger refused |
| dsr_consumer_group_lag | gauge | group, topic, partition: from the broker's committed offsets |
| dsr_heartbeat_timestamp_seconds | gauge | (none): when the process's loop last beat, Unix time |

The ledger-backed gauges and ``dsr_consumer_group_lag`` are served by the exporter
(``services/monitoring/exporter.py``), never by a worker or a runner, so they stay up
while workers are down. Counters exist at zero from a process's start for every label
set known then (``zero``), so ``increase()`` sees the first event.

``dsr_connector_outcomes_total`` outcomes: ``ok`` and ``failed`` once per task,
``retried`` once per retry and ``skipped_stale`` once per task skipped because its request
had timed out, all counted by the runner; ``not_applicable``,
``refused`` (withheld by a data-map rule) and ``timed_out`` (a system that never
answered) once per request and system,
counted when the response leaves the worker, from its per-system outcomes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from pydantic import BaseModel

from streams import topics
from streams.records import (
    DeadLetterEvent,
    Kind,
    Regulation,
    RejectedEvent,
    ResponseEvent,
    ResponseStatus,
    TaskResult,
)

log = logging.getLogger("dsr.monitoring")

#: The pipeline's own registry; ``/metrics`` serves it, with the process collectors.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

#: 50 ms to 60 days: received_at is when the business got the request, maybe days ago.
LATENCY_BUCKETS = (
    (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
    + tuple(60.0 * minutes for minutes in (1, 5, 15, 60, 240, 720))
    + tuple(86400.0 * days for days in (1, 3, 7, 14, 30, 60))
)

# -- requests -----------------------------------------------------------------
REQUEST_LATENCY = Histogram(
    "dsr_request_latency_seconds",
    "From the request's received_at to its completed response (may span days).",
    ["kind", "regulation"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
REQUEST_PROCESSING = Histogram(
    "dsr_request_processing_seconds",
    "From intake to the completed response: the pipeline's own time.",
    ["kind", "regulation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
REQUESTS_COMPLETED = Counter(
    "dsr_requests_completed",
    "Responses sent, by final status.",
    ["kind", "regulation", "status"],
    registry=REGISTRY,
)

# -- stream processing ----------------------------------------------------------
STAGE_SECONDS = Histogram(
    "dsr_stage_seconds",
    "Time spent in one handler call of a stage (a batch; decisions, provisions: an event).",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "dsr_dead_letters",
    "Events and tasks sent to the dead-letter topic, by the stage or topic they came from.",
    ["source"],
    registry=REGISTRY,
)
REQUESTS_PARKED = Counter(
    "dsr_requests_parked",
    "Requests set aside (parked) because handling them raised, by stage and exception type.",
    ["stage", "error"],
    registry=REGISTRY,
)
STAGE_WAITS = Counter(
    "dsr_stage_waits",
    "A stage's attempts at a batch that failed because the ledger, the broker or the package "
    "store was away; the batch waits and is handled again (nothing is dead-lettered for it).",
    ["stage"],
    registry=REGISTRY,
)
REJECTED_EVENTS = Counter(
    "dsr_rejected_events",
    "Malformed request events sent to the rejected topic.",
    ["reason_code"],
    registry=REGISTRY,
)
PROVISIONS_REFUSED = Counter(
    "dsr_provisions_refused",
    "Provision records the provision ledger refused: provision_stopped (the principal "
    "stopped provision to that recipient) or record_id_conflict.",
    ["reason_code"],
    registry=REGISTRY,
)
#: Rejection reasons that only the provision ledger gives.
PROVISION_REFUSALS = ("provision_stopped", "record_id_conflict")
#: Every reason code a rejected event can carry.
REJECTION_CODES: tuple[str, ...] = get_args(RejectedEvent.model_fields["reason_code"].annotation)
#: The worker's stages: each one's handler time, its waits, and where its dead letters come
#: from (a runner's letters name their task topic).
STAGES = ("intake", "decisions", "fanout", "aggregate", "provisions", "notices")
DEAD_LETTER_SOURCES = STAGES

#: Set from the loop's own beat (``services.heartbeat``): it stops moving while the loop
#: is stuck, though ``/metrics`` (served by a thread) still answers (DSRProcessFrozen).
HEARTBEAT = Gauge(
    "dsr_heartbeat_timestamp_seconds",
    "When this process's event loop last beat, in Unix time.",
    registry=REGISTRY,
)

# -- connectors -------------------------------------------------------------------
CONNECTOR_CALL = Histogram(
    "dsr_connector_call_seconds",
    "Duration of one connector call (one attempt) in the runner.",
    ["system", "kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
TASK_SECONDS = Histogram(
    "dsr_task_seconds",
    "A system's time on one task: from the runner's first call to its result, retries and "
    "their backoff included (what the dashboard and dsr top rank systems by).",
    ["system", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
CONNECTOR_OUTCOMES = Counter(
    "dsr_connector_outcomes",
    "Task outcomes per system: ok, failed, retried (each retry), not_applicable, timed_out, "
    "refused.",
    ["system", "outcome"],
    registry=REGISTRY,
)
#: The outcomes a runner counts, and those the worker counts from each response.
RUNNER_OUTCOMES = ("ok", "failed", "retried", "skipped_stale")
WORKER_OUTCOMES = ("not_applicable", "refused", "timed_out")


# -- hooks ------------------------------------------------------------------------
@contextmanager
def observe_stage(stage: str) -> Iterator[None]:
    """Time one handler call: ``with observe_stage("intake"): ...``."""
    with STAGE_SECONDS.labels(stage).time():
        yield


@contextmanager
def observe_connector_call(system: str, kind: str) -> Iterator[None]:
    """Time one connector call, whether it returns or raises an ``Exception``; a call
    cut short otherwise (abandoned while it hung: its task records it with
    ``record_connector_call``) is not timed here."""
    began = time.perf_counter()
    try:
        yield
    except Exception:
        record_connector_call(system, kind, time.perf_counter() - began)
        raise
    record_connector_call(system, kind, time.perf_counter() - began)


def record_connector_call(system: str, kind: str, seconds: float) -> None:
    """A connector call that took ``seconds``."""
    CONNECTOR_CALL.labels(system, str(kind)).observe(seconds)


def record_retry(system: str) -> None:
    CONNECTOR_OUTCOMES.labels(system, "retried").inc()


def record_stale(system: str) -> None:
    """A task skipped unrun: its request had timed out before it was taken."""
    CONNECTOR_OUTCOMES.labels(system, "skipped_stale").inc()


def record_parked(stage: str, error: str) -> None:
    """A request parked: ``error`` is the exception's type name (a code's, not a subject's)."""
    REQUESTS_PARKED.labels(stage, error[:64]).inc()


def record_beat(at: float) -> None:
    """The process's loop beat at ``at`` (Unix time)."""
    HEARTBEAT.set(at)


def record_wait(stage: str, exc: BaseException) -> None:
    """A batch of ``stage`` failed because the infrastructure was away (``exc``)."""
    STAGE_WAITS.labels(stage).inc()


def record_task_result(result: TaskResult) -> None:
    """A task the runner finished: ``ok`` or ``failed``, and how long it took."""
    CONNECTOR_OUTCOMES.labels(result.system, result.status).inc()
    took = (result.finished_at - result.started_at).total_seconds()
    TASK_SECONDS.labels(result.system, result.status).observe(max(0.0, took))


def record_sent(record: BaseModel) -> None:
    """Count a record the first time it leaves: a response (its request's completion),
    a rejected event, or a dead letter. Anything else is not counted here."""
    if isinstance(record, ResponseEvent):
        record_completion(record)
    elif isinstance(record, RejectedEvent):
        REJECTED_EVENTS.labels(record.reason_code).inc()
        if record.reason_code in PROVISION_REFUSALS:
            PROVISIONS_REFUSED.labels(record.reason_code).inc()
    elif isinstance(record, DeadLetterEvent):
        DEAD_LETTERS.labels(record.source).inc()


def record_completion(response: ResponseEvent) -> None:
    """A request's response, sent for the first time. A redrive's next revision is the
    same request answered again: it is not counted as another completion."""
    if response.revision > 1:
        return
    kind, regulation = str(response.kind), str(response.regulation)
    REQUESTS_COMPLETED.labels(kind, regulation, str(response.status)).inc()
    REQUEST_LATENCY.labels(kind, regulation).observe(response.latency_ms / 1000)
    REQUEST_PROCESSING.labels(kind, regulation).observe(response.processing_ms / 1000)
    for outcome in response.systems:
        if outcome.status in ("not_applicable", "timed_out", "refused"):
            CONNECTOR_OUTCOMES.labels(outcome.system, str(outcome.status)).inc()


def zero(systems: Sequence[str], process: str) -> None:
    """Create at zero every counter and histogram series ``process`` (``worker`` or
    ``runner``) may move whose labels are known at start: the data map's systems, the
    kinds, regulations and statuses, the stages, the rejection reasons and the dead-letter
    sources. A series that first appears at 1 reads to ``increase()`` and ``rate()`` as no
    increase at all."""
    if process == "runner":
        for system in systems:
            for outcome in RUNNER_OUTCOMES:
                CONNECTOR_OUTCOMES.labels(system, outcome)
            for outcome in ("ok", "failed"):
                TASK_SECONDS.labels(system, outcome)
            for kind in Kind:
                CONNECTOR_CALL.labels(system, kind.value)
            DEAD_LETTERS.labels(topics.tasks_topic(system))
        return
    for system in systems:
        for outcome in WORKER_OUTCOMES:
            CONNECTOR_OUTCOMES.labels(system, outcome)
    for source in DEAD_LETTER_SOURCES:
        DEAD_LETTERS.labels(source)
    for code in REJECTION_CODES:
        REJECTED_EVENTS.labels(code)
    for code in PROVISION_REFUSALS:
        PROVISIONS_REFUSED.labels(code)
    for stage in STAGES:
        STAGE_SECONDS.labels(stage)
        STAGE_WAITS.labels(stage)
    for kind in Kind:
        for regulation in Regulation:
            REQUEST_LATENCY.labels(kind.value, regulation.value)
            REQUEST_PROCESSING.labels(kind.value, regulation.value)
            for status in ResponseStatus:
                REQUESTS_COMPLETED.labels(kind.value, regulation.value, status.value)
