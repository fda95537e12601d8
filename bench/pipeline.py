"""One benchmark run of the real pipeline: embedded broker, workers, connector runners."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import procstats, profile, workload
from bench.ledger import postgres_schema
from services.client import Submitter, Watcher
from services.ledger import Ledger
from services.monitoring.overview import quantiles
from services.settings import Settings
from services.stack import Stack
from services.status import status_from
from streams import topics


@dataclass(frozen=True)
class Scenario:
    requests: int
    systems: int
    workers: int = 1
    #: Connector runner processes. One serves two workers with no-op connectors (a runner
    #: costs less than half what a worker does: docs/scaling.md, "Extrapolation").
    runners: int = 1
    connector: str = "noop"
    #: Requests per second; None submits them all at once.
    rate: float | None = None
    #: The sweeps this run is a point of: load, systems, workers, rate, sql.
    sweeps: tuple[str, ...] = ()
    #: Sample the worker and the runner with py-spy, for a CPU breakdown by component.
    profile: bool = False
    #: The ledger's database: "sqlite" (the embedded default) or "postgres".
    ledger: str = "sqlite"
    #: Seconds the joined stack is left with no requests first, to measure what each
    #: process costs while idle (CPU seconds a second); 0: not measured.
    idle_s: float = 0.0

    @property
    def name(self) -> str:
        paced = f"-{self.rate:g}rps" if self.rate else ""
        extra = "-profiled" if self.profile else ""
        extra += "-postgres" if self.ledger == "postgres" else ""
        layout = f"w{self.workers}" + (
            "" if self.runners == self.workers else f"-runners{self.runners}"
        )
        return f"{self.connector}-r{self.requests}-s{self.systems}-{layout}{paced}{extra}"


def run(scenario: Scenario, home: Path, timeout_s: float | None = None) -> dict[str, Any]:
    """Run ``scenario``; requests not answered within ``timeout_s`` (by default 600 s, or
    0.2 s a request if more) count as lost."""
    if scenario.ledger != "postgres":
        return _run(scenario, home, None, timeout_s)
    with postgres_schema(workload.POSTGRES_URL) as url:
        return _run(scenario, home, url, timeout_s)


def _run(
    scenario: Scenario, home: Path, database_url: str | None, timeout_s: float | None
) -> dict[str, Any]:
    timeout_s = timeout_s or max(600.0, 0.2 * scenario.requests)
    settings = workload.prepare(home, scenario.systems, scenario.connector, database_url)
    events = workload.requests(scenario.name, scenario.requests)
    stack = Stack(
        settings,
        workers=scenario.workers,
        runners=scenario.runners,
        log_dir=home / "logs",
        metrics=False,
    )
    with stack:
        spawned = time.time()
        join_s = stack.wait_joined()
        pids = {n: c.process.pid for n, c in stack.components.items() if c.process}
        if stack.broker is not None:
            pids["broker"] = stack.broker.process.pid
        idle = _idle_cpu(pids, scenario.idle_s)
        cpu_before = {n: procstats.cpu_seconds(p) or 0.0 for n, p in pids.items()}
        progress = _Progress(pids["worker-0"])
        sampler = _sampler(scenario, pids, home)
        submitted, start = _drive(stack, scenario, events, progress, timeout_s)
        sampled = sampler.stop() if sampler else {}
        completed = progress.completed
        elapsed = max(completed.values(), default=start) - start
        cpu = {n: (procstats.cpu_seconds(p) or 0.0) - cpu_before[n] for n, p in pids.items()}
        peak = {n: procstats.peak_rss_mb(p) for n, p in pids.items()}
        first_task_s = _first_task_s(settings, events[0], spawned)
        stages = _stages(settings, sorted(completed)[:: max(1, len(completed) // 200)])
    latencies = [(completed[r] - submitted[r]) * 1000 for r in completed if r in submitted]
    n = max(1, len(completed))
    return {
        "scenario": scenario.name,
        **vars(scenario),
        "completed": len(completed),
        "lost": scenario.requests - len(completed),
        "statuses": dict(Counter(progress.statuses.values())),
        "join_s": round(join_s, 2),
        "worker_start_to_first_task_s": first_task_s,
        **_latency(latencies),
        "throughput_rps": round(len(completed) / elapsed, 1) if elapsed > 0 else None,
        "elapsed_s": round(elapsed, 2),
        "stages_ms": stages,
        "peak_rss_mb": {name: round(v, 1) for name, v in peak.items() if v is not None},
        "cpu_s_per_request": {name: round(v / n, 5) for name, v in cpu.items()},
        "cpu_s_per_request_total": round(sum(cpu.values()) / n, 5),
        "idle_cpu_s_per_s": idle,
        "cpu_ms_per_request_by_component": profile.per_request_ms(
            sampled, {name: v / n for name, v in cpu.items()}
        ),
        "worker_rss_mb_by_completed": progress.rss[:: max(1, len(progress.rss) // 40)],
    }


def _idle_cpu(pids: dict[str, int], seconds: float) -> dict[str, float] | None:
    """Each process's CPU seconds a second over ``seconds`` with nothing to do."""
    if seconds <= 0:
        return None
    before = {n: procstats.cpu_seconds(p) or 0.0 for n, p in pids.items()}
    time.sleep(seconds)  # the measuring window: the stack is left alone
    after = {n: procstats.cpu_seconds(p) or 0.0 for n, p in pids.items()}
    return {n: round((after[n] - before[n]) / seconds, 4) for n in pids}


def _drive(
    stack: Stack, scenario: Scenario, events: list[bytes], progress: _Progress, timeout_s: float
) -> tuple[dict[str, float], float]:
    """Submit ``events`` as the scenario says, and follow the responses until each has
    one (or the time is up, or a process died); when each was submitted, and the start."""
    submitted: dict[str, float] = {}
    watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
    submitter = stack.submitter()
    sender = threading.Thread(target=_submit, args=(submitter, events, scenario, submitted))
    start = time.time()
    sender.start()
    deadline = time.monotonic() + timeout_s
    try:
        while len(progress.statuses) < scenario.requests and time.monotonic() < deadline:
            progress.follow(watcher)
            if stack.check_alive():
                break
        sender.join()
    finally:
        submitter.close()
        watcher.close()
    return submitted, start


def _sampler(scenario: Scenario, pids: dict[str, int], home: Path) -> profile.Sampler | None:
    if not (scenario.profile and profile.Sampler.program()):
        return None
    python = {n: p for n, p in pids.items() if n != "broker"}
    sampler = profile.Sampler(python, home / "profile")
    sampler.start()
    return sampler


class _Progress:
    """The responses seen so far (a request counts as done only when "completed", and
    when this client has read its response), and the worker's memory sampled against
    how many are done."""

    def __init__(self, worker_pid: int) -> None:
        self.worker_pid = worker_pid
        self.statuses: dict[str, str] = {}
        self.completed: dict[str, float] = {}
        self.rss: list[tuple[float, float]] = []
        self._next_sample = 0.0

    def follow(self, watcher: Watcher) -> None:
        for _, body in watcher.poll(0.1):
            seen = time.time()
            rid = body["request_id"]
            self.statuses.setdefault(rid, body["status"])
            if rid not in self.completed and body["status"] == "completed":
                self.completed[rid] = seen
        if time.monotonic() >= self._next_sample:
            worker_rss = procstats.rss_mb(self.worker_pid)
            if worker_rss is not None:
                self.rss.append((len(self.completed), worker_rss))
            self._next_sample = time.monotonic() + 0.5


def _latency(latencies: list[float]) -> dict[str, Any]:
    lat = quantiles(latencies)
    return {
        "latency_ms": {k: round(v, 1) if v is not None else None for k, v in lat.items()},
        "latency_mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
    }


def _submit(
    submitter: Submitter, events: list[bytes], scenario: Scenario, submitted: dict[str, float]
) -> None:
    if scenario.rate is None:
        now = time.time()
        for raw in events:
            submitted[_request_id(raw)] = now
        submitter.submit_all(events)
        return
    interval = 1 / scenario.rate
    t0 = time.monotonic()
    for i, raw in enumerate(events):
        delay = t0 + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        submitted[_request_id(raw)] = time.time()
        submitter.submit(raw)
        submitter.producer.flush()


def _request_id(raw: bytes) -> str:
    # workload ids are f"{run}-{i:05d}" in a fixed place of the JSON
    start = raw.index(b'"request_id": "') + len(b'"request_id": "')
    return raw[start : raw.index(b'"', start)].decode()


def _first_task_s(settings: Settings, raw: bytes, spawned: float) -> float | None:
    """From the processes' start to the first request's first task being consumed."""
    ledger = Ledger(settings.database_url)
    try:
        tasks = [t for t in ledger.tasks(_request_id(raw)) if t.result]
        starts = [datetime.fromisoformat(t.result["started_at"]).timestamp() for t in tasks]  # type: ignore[index]
        return round(min(starts) - spawned, 2) if starts else None
    finally:
        ledger.close()


def _stages(settings: Settings, request_ids: list[str]) -> dict[str, float | None]:
    """Median duration of each stage over a sample of requests (systems pooled)."""
    ledger = Ledger(settings.database_url)
    durations: dict[str, list[float]] = {}
    try:
        for rid in request_ids:
            report = status_from(ledger, rid, with_response=False)
            for stage in (report or {}).get("stages", []):
                name = "system" if stage["stage"].startswith("system:") else stage["stage"]
                durations.setdefault(name, []).append(stage["duration_ms"])
                if stage.get("connector_ms") is not None:
                    durations.setdefault("connector", []).append(stage["connector_ms"])
    finally:
        ledger.close()
    return {name: round(statistics.median(v), 1) for name, v in durations.items()}
