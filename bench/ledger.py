"""``python -m bench.ledger``: the ledger's share of a request, on its own.

It drives a ``Ledger`` through the calls the worker's agents make for a request
(``streams.agents``: intake, the acknowledgement notice, fan-out, aggregation of each
system's result, completion, the outbox's published mark, the response notice), for N
requests of 5 systems, in three ways:

- one at a time: each request alone, a result at a time, as when requests trickle in;
- in batches: as the agents take a burst, ``--batch`` requests admitted, fanned out,
  their results recorded, their responses completed and their notices sent a batch at
  a time;
- the same batches shared by ``--clients`` processes side by side (default 2), each
  with its own connections, as that many workers share a burst;

and prints the requests a second and the CPU milliseconds a request of each: on SQLite
(a temporary file, as the pipeline's default ``sqlite:///<DSR_HOME>/ledger.db``) and,
given ``--postgres URL`` (or DSR_BENCH_POSTGRES_URL), on PostgreSQL, in a schema of its
own dropped afterwards.

python -m bench.ledger                        # 500 requests on SQLite
python -m bench.ledger -n 2000 --postgres postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text

from services.demo.scenario import event
from services.ledger import Action, Arrival, Completion, Ledger, TaskPlan
from services.notify import notice_id
from streams.records import RequestEvent, Task, TaskResult, TaskStatus, utcnow

TIMEOUT = timedelta(hours=1)


#: The agents' largest batches (``streams.app``): accepted requests and results, notices.
BATCH = 64
NOTICE_BATCH = 32
#: How long clients side by side wait for each other to be warm.
START_TIMEOUT_S = 120.0


def one_request(ledger: Ledger, request_id: str, systems: list[str]) -> None:
    """The ledger calls of one disclosure request answered by every system, alone."""
    req = _admit(ledger, request_id)
    _notices(ledger, [request_id], "acknowledgement")
    # fan-out (streams.agents.fanout.handle_batch, of one)
    [tasks] = _fan_out(ledger, {request_id: req}, systems).values()
    # aggregation, a result at a time (streams.agents.aggregate: record, step)
    for task in tasks:
        [recorded] = ledger.record_results([_result(req, task)])
        assert recorded.first and recorded.request is not None
        ledger.identities(recorded.request)
        ledger.request_event(recorded.request)
        ledger.refused_parts(recorded.request)
    # the response (streams.agents.respond: prepare, conclude)
    assert recorded.request is not None
    _complete(ledger, [recorded.request])
    ledger.mark_published([request_id])  # streams.outbox
    _notices(ledger, [request_id], "response")


def batch_of_requests(ledger: Ledger, request_ids: list[str], systems: list[str]) -> None:
    """The ledger calls of a burst of disclosure requests, each answered by every system,
    as the agents batch them."""
    reqs = _admit_many(ledger, request_ids)
    for i in range(0, len(request_ids), NOTICE_BATCH):
        _notices(ledger, request_ids[i : i + NOTICE_BATCH], "acknowledgement")
    tasks = _fan_out(ledger, reqs, systems)
    results = [_result(reqs[rid], task) for rid in request_ids for task in tasks[rid]]
    for i in range(0, len(results), BATCH):
        last = {}
        for recorded in ledger.record_results(results[i : i + BATCH]):
            assert recorded.first and recorded.request is not None
            last[recorded.request.request_id] = recorded.request
        for row in last.values():
            ledger.identities(row)
            ledger.request_event(row)
            ledger.refused_parts(row)
        done = [row for row in last.values() if row.request_id not in _open_after(i, results)]
        if done:
            _complete(ledger, done)
            ledger.mark_published([row.request_id for row in done])
            for j in range(0, len(done), NOTICE_BATCH):
                ids = [row.request_id for row in done[j : j + NOTICE_BATCH]]
                _notices(ledger, ids, "response")


def _open_after(i: int, results: list[TaskResult]) -> set[str]:
    """The requests with results after the batch that starts at ``i``."""
    return {r.request_id for r in results[i + BATCH :]}


def _admit(ledger: Ledger, request_id: str) -> RequestEvent:
    """Intake (``streams.agents.intake.handle_request``)."""
    [req] = _admit_many(ledger, [request_id]).values()
    return req


def _admit_many(ledger: Ledger, request_ids: list[str]) -> dict[str, RequestEvent]:
    """Intake of a batch (``streams.agents.intake.handle_batch``)."""
    arrivals = []
    for request_id in request_ids:
        body = event(request_id, "disclosure", {"email": "a@example.jp"})
        req = RequestEvent.model_validate(body)
        deadline = req.received_at + timedelta(days=14)
        arrivals.append(Arrival(req, "proceed", None, deadline, clock_pauses=True, key_id="bench"))
    for admission in ledger.admit_many(arrivals):
        assert admission.outcome == "new"
    return {a.event.request_id: a.event for a in arrivals}


def _fan_out(
    ledger: Ledger, reqs: dict[str, RequestEvent], systems: list[str]
) -> dict[str, list[Any]]:
    """Fan-out (``streams.agents.fanout.handle_batch``)."""
    rows = ledger.requests(list(reqs))
    plans = {}
    for request_id, req in reqs.items():
        ledger.request_event(rows[request_id])
        ledger.refused_parts(rows[request_id])
        plans[request_id] = [
            TaskPlan(Task.make_id(request_id, s, req.kind), s, req.kind, 0, TaskStatus.PENDING)
            for s in systems
        ]
    return ledger.fan_out_many(plans, TIMEOUT)


def _result(req: RequestEvent, task: Any) -> TaskResult:
    return TaskResult(
        request_id=req.request_id,
        task_id=task.task_id,
        system=task.system,
        kind=req.kind,
        status="ok",
        records=[{"email": "a@example.jp"}],
        started_at=utcnow(),
    )


def _complete(ledger: Ledger, rows: list[Any]) -> None:
    """Completion (``streams.agents.respond.conclude``)."""
    for row in rows:
        ledger.request_event(row)
        ledger.refused_parts(row)
    body = {"status": "completed", "reasons": []}
    done = ledger.complete_many(
        [Completion(row.request_id, "completed", body, 12, 0) for row in rows]
    )
    assert done == {row.request_id for row in rows}


def _notices(ledger: Ledger, request_ids: list[str], purpose: str) -> None:
    """The notices agent's reads and its audit rows (``streams.agents.notices``)."""
    read = ledger.notice_reads(request_ids, request_ids if purpose == "response" else [])
    for row in read.requests.values():
        ledger.request_event(row)
    sent = read.sent
    due = [(rid, notice_id(rid, purpose, 1)) for rid in request_ids]  # type: ignore[arg-type]
    ledger.audit_many(
        [
            (rid, "notices", Action.NOTIFIED, _notified(nid, purpose))
            for rid, nid in due
            if (rid, nid) not in sent
        ]
    )


def _notified(nid: str, purpose: str) -> dict[str, Any]:
    return {
        "notice_id": nid,
        "purpose": purpose,
        "revision": 1,
        "channel": "email",
        "addressed": True,
    }


def run(url: str, requests: int, systems: int, batch: int = 1, clients: int = 1) -> dict[str, Any]:
    """``requests`` requests through a migrated ledger at ``url``, ``batch`` at a time
    (1: ``one_request``): their speed and CPU. With ``clients`` above 1, that many
    processes share them, each with its own connections, side by side, as that many
    workers do; their CPU is summed."""
    names = [f"sys{i:02d}" for i in range(systems)]
    run_id = uuid.uuid4().hex[:8]
    clients = max(1, min(clients, requests))
    ids = [f"bench-{run_id}-{j:06d}" for j in range(requests)]
    shares = [ids[c * requests // clients : (c + 1) * requests // clients] for c in range(clients)]
    with Ledger(url) as ledger:
        ledger.migrate()
    if clients == 1:
        spans = [_client(url, shares[0], names, batch, None)]
    else:
        spawn = multiprocessing.get_context("spawn")  # no engine is inherited
        with spawn.Manager() as manager, ProcessPoolExecutor(clients, mp_context=spawn) as pool:
            start = manager.Barrier(clients)
            runs = [pool.submit(_client, url, share, names, batch, start) for share in shares]
            spans = [r.result() for r in runs]
    cpu = sum(span[0] for span in spans)
    wall = max(span[2] for span in spans) - min(span[1] for span in spans)
    return {
        "requests": requests,
        "systems": systems,
        "batch": batch,
        "clients": clients,
        "throughput_rps": round(requests / wall, 1),
        "cpu_ms_per_request": round(cpu * 1000 / requests, 3),
        "wall_ms_per_request": round(wall * 1000 / requests, 3),
    }


def _client(
    url: str, ids: list[str], systems: list[str], batch: int, start: Any
) -> tuple[float, float, float]:
    """One client's share of ``run``, after a request of its own to warm its connections
    and statement caches, and (given ``start``) once every client is warm: its CPU
    seconds, and when it started and ended on the host's monotonic clock."""
    with Ledger(url) as ledger:
        one_request(ledger, f"warm-{ids[0]}", systems)
        if start is not None:
            start.wait(timeout=START_TIMEOUT_S)  # if one failed, the others give up here
        cpu0, began = time.process_time(), time.clock_gettime(time.CLOCK_MONOTONIC)
        for i in range(0, len(ids), batch):
            if batch == 1:
                one_request(ledger, ids[i], systems)
            else:
                batch_of_requests(ledger, ids[i : i + batch], systems)
        return (
            time.process_time() - cpu0,
            began,
            time.clock_gettime(time.CLOCK_MONOTONIC),
        )


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A URL for a fresh schema of the PostgreSQL database at ``url``, dropped after."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__)
    parser.add_argument("-n", "--requests", type=int, default=500)
    parser.add_argument("--systems", type=int, default=5)
    parser.add_argument("--batch", type=int, default=BATCH, help="requests in a burst's batch")
    parser.add_argument(
        "--clients",
        type=int,
        default=2,
        help="also run the batches in this many processes side by side, as that many "
        "workers (1: not)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("DSR_BENCH_POSTGRES_URL"),
        metavar="URL",
        help="also run on this PostgreSQL database (default: DSR_BENCH_POSTGRES_URL)",
    )
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    runs = {"": (1, 1), "_batches": (args.batch, 1)}
    if args.clients > 1:
        runs[f"_batches_{args.clients}_clients"] = (args.batch, args.clients)
    for backend in ("sqlite", "postgres") if args.postgres else ("sqlite",):
        for suffix, (batch, clients) in runs.items():
            with _database(backend, args.postgres) as url:
                r = run(url, args.requests, args.systems, batch, clients)
            results[backend + suffix] = r
            _print(backend, r)
    return results


@contextmanager
def _database(backend: str, postgres: str | None) -> Iterator[str]:
    """A fresh database: a temporary SQLite file, or a schema of ``postgres``."""
    if backend == "postgres":
        assert postgres is not None
        with postgres_schema(postgres) as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="dsr-bench-ledger-") as home:
        yield f"sqlite:///{Path(home) / 'ledger.db'}"


def _print(backend: str, r: dict[str, Any]) -> None:
    side_by_side = f", {r['clients']} clients side by side" if r["clients"] > 1 else ""
    print(
        f"{backend:8} {r['requests']} requests x {r['systems']} systems, "
        f"{r['batch']} at a time{side_by_side}: "
        f"{r['throughput_rps']} req/s, {r['cpu_ms_per_request']} ms CPU/request, "
        f"{r['wall_ms_per_request']} ms wall/request",
        flush=True,
    )


if __name__ == "__main__":
    main()
