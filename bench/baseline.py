"""The baseline: the same work in one process, one request after another, no broker.

It runs the pipeline's own handlers (validation, rules, ledger, fan-out planning,
aggregation, packages, the notice to the principal) and calls each system's connector
in turn, handing each message straight to the next step instead of through Kafka.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench import procstats, workload
from bench.pipeline import Scenario
from connectors.base import ConnectorBase
from connectors.dispatch import dispatch, ok_result
from connectors.registry import build_all
from connectors.runner.crossing import opened, outgoing
from services import notify
from services.monitoring.overview import quantiles
from services.signing import Headers, Keyring
from streams import topics
from streams.agents import aggregate, decode, fanout, intake, notices
from streams.context import Outgoing, Pipeline
from streams.records import Task, utcnow


def run(scenario: Scenario, home: Path) -> dict[str, Any]:
    settings = workload.prepare(home, scenario.systems, scenario.connector)
    os.environ["DSR_HOME"] = str(home)  # the data map's ${DSR_HOME}, as the stack sets it
    signer = Keyring.ensure(settings.signing_keys_path).signer()
    p = Pipeline.from_settings(settings)
    p.ledger.migrate()
    connectors = build_all(p.datamap)  # the runner's part, in the same loop
    notifier, contact = notify.from_settings(settings), str(p.letterhead.complaints)
    loop = asyncio.new_event_loop()  # the notices agent's part, as the worker runs it

    def tell(o: Outgoing) -> None:
        loop.run_until_complete(notices.handle_notice(p, notifier, o.value, contact))

    # Signed as a producer would sign them, before the clock starts; intake verifies.
    events = [
        (raw, signer.headers(raw))
        for raw in workload.requests(f"base-{scenario.name}", scenario.requests)
    ]
    cpu0 = procstats.cpu_seconds(_self()) or 0.0
    latencies = []
    answered = 0
    start = time.perf_counter()
    try:
        for raw, headers in events:
            began = time.perf_counter()
            answered += _one(p, connectors, raw, headers, tell)
            latencies.append((time.perf_counter() - began) * 1000)
    finally:
        elapsed = time.perf_counter() - start
        p.close()
        loop.close()
        for c in connectors.values():
            c.close()
    cpu = (procstats.cpu_seconds(_self()) or 0.0) - cpu0
    return {
        "scenario": "baseline-" + scenario.name,
        "connector": scenario.connector,
        "requests": scenario.requests,
        "systems": scenario.systems,
        "completed": answered,
        "latency_ms": {k: round(v, 2) if v else v for k, v in quantiles(latencies).items()},
        "latency_mean_ms": round(statistics.fmean(latencies), 2),
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "elapsed_s": round(elapsed, 2),
        "cpu_s_per_request_total": round(cpu / len(latencies), 5),
        "peak_rss_mb": {"baseline": procstats.peak_rss_mb(_self())},
    }


def _one(
    p: Pipeline,
    connectors: Mapping[str, ConnectorBase[Any]],
    raw: bytes,
    headers: Headers,
    tell: Callable[[Outgoing], None],
) -> bool:
    """One request, start to response: every message goes straight to its handler.
    True if it ended in a response."""
    queue: deque[Outgoing] = deque(intake.handle_request(p, raw, headers))
    answered = False
    while queue:
        o = queue.popleft()
        if o.topic == topics.ACCEPTED:
            queue.extend(fanout.handle_accepted(p, decode.accepted(o.value)))
        elif o.topic.startswith(topics.TASKS_PREFIX):
            queue.extend(aggregate.handle_result(p, _execute(p, connectors, o.value)))
        elif o.topic == topics.RESPONSES:
            p.ledger.mark_published([o.key.decode()] if o.key else [])
            answered = True
        elif o.topic == topics.NOTICES:
            tell(o)
    return answered


def _execute(p: Pipeline, connectors: Mapping[str, ConnectorBase[Any]], value: bytes) -> bytes:
    """The runner's part: open the sealed task, call its connector, seal the result."""
    received = Task.model_validate_json(value)
    task = opened(received, p.sealer)
    result = ok_result(task, dispatch(connectors[task.system], task), utcnow())
    return outgoing(result, received, p.sealer, p.claims).model_dump_json().encode()


def _self() -> int:
    return os.getpid()
