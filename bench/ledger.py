"""``python -m bench.ledger``: the ledger's share of a request, on its own.

It drives a ``Ledger`` through the calls one request makes in the worker, in the
order the agents make them (``streams.agents``: intake, the acknowledgement notice,
fan-out, one aggregation per system's result, completion, the outbox's published
mark, the response notice), for N requests of 5 systems, and prints the requests a
second and the CPU milliseconds a request: on SQLite (a temporary file, as the
pipeline's default ``sqlite:///<DSR_HOME>/ledger.db``) and, given ``--postgres URL``
(or DSR_BENCH_POSTGRES_URL), on PostgreSQL, in a schema of its own dropped afterwards.

python -m bench.ledger                        # 500 requests on SQLite
python -m bench.ledger -n 2000 --postgres postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text

from services.demo.scenario import event
from services.ledger import Action, Ledger, TaskPlan
from services.notify import notice_id
from streams.records import RequestEvent, Task, TaskResult, TaskStatus, utcnow

TIMEOUT = timedelta(hours=1)


def one_request(ledger: Ledger, request_id: str, systems: list[str]) -> None:
    """The ledger calls of one disclosure request answered by every system."""
    req = RequestEvent.model_validate(event(request_id, "disclosure", {"email": "a@example.jp"}))
    # intake (streams.agents.intake.handle_request)
    deadline = req.received_at + timedelta(days=14)
    ledger.admit(req, "proceed", None, deadline, clock_pauses=True, key_id="bench")
    _notice(ledger, request_id, "acknowledgement")
    # fan-out (streams.agents.fanout.handle_accepted)
    row = ledger.request(request_id)
    assert row is not None
    ledger.request_event(row)
    ledger.refused_parts(row)
    plans = [
        TaskPlan(Task.make_id(request_id, s, req.kind), s, req.kind, 0, TaskStatus.PENDING)
        for s in systems
    ]
    tasks = ledger.fan_out(request_id, plans, TIMEOUT)
    # aggregation, a result at a time (streams.agents.aggregate.handle_result, advance)
    for task in tasks:
        started = utcnow()
        result = TaskResult(
            request_id=request_id,
            task_id=task.task_id,
            system=task.system,
            kind=req.kind,
            status="ok",
            records=[{"email": "a@example.jp"}],
            started_at=started,
        )
        [recorded] = ledger.record_results([result])
        assert recorded.first and recorded.request is not None
        ledger.identities(recorded.request)
        ledger.request_event(recorded.request)
        ledger.refused_parts(recorded.request)
    # the response (streams.agents.respond.finish, build)
    assert recorded.request is not None
    ledger.request_event(recorded.request)
    ledger.refused_parts(recorded.request)
    body = {"request_id": request_id, "status": "completed", "reasons": []}
    assert ledger.complete(request_id, "completed", body, 12, 0)
    ledger.mark_published([request_id])  # streams.outbox
    _notice(ledger, request_id, "response")


def _notice(ledger: Ledger, request_id: str, purpose: str) -> None:
    """The notices agent's reads and its audit row (``streams.agents.notices``)."""
    row = ledger.request(request_id)
    assert row is not None
    ledger.request_event(row)
    if purpose == "response":
        ledger.response(request_id)
    nid = notice_id(request_id, purpose, 1)  # type: ignore[arg-type]
    if not ledger.notified(request_id, nid):
        ledger.audit(
            request_id,
            "notices",
            Action.NOTIFIED,
            notice_id=nid,
            purpose=purpose,
            revision=1,
            channel="email",
            addressed=True,
        )


def run(url: str, requests: int, systems: int) -> dict[str, Any]:
    """``requests`` requests through a migrated ledger at ``url``: their speed and CPU."""
    names = [f"sys{i:02d}" for i in range(systems)]
    run_id = uuid.uuid4().hex[:8]
    with Ledger(url) as ledger:
        ledger.migrate()
        one_request(ledger, f"warm-{run_id}", names)  # connections, statement caches
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(requests):
            one_request(ledger, f"bench-{run_id}-{i:06d}", names)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "requests": requests,
        "systems": systems,
        "throughput_rps": round(requests / wall, 1),
        "cpu_ms_per_request": round(cpu * 1000 / requests, 3),
        "wall_ms_per_request": round(wall * 1000 / requests, 3),
    }


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
    parser.add_argument(
        "--postgres",
        default=os.environ.get("DSR_BENCH_POSTGRES_URL"),
        metavar="URL",
        help="also run on this PostgreSQL database (default: DSR_BENCH_POSTGRES_URL)",
    )
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dsr-bench-ledger-") as home:
        url = f"sqlite:///{Path(home) / 'ledger.db'}"
        results["sqlite"] = run(url, args.requests, args.systems)
    _print("sqlite", results["sqlite"])
    if args.postgres:
        with postgres_schema(args.postgres) as url:
            results["postgres"] = run(url, args.requests, args.systems)
        _print("postgres", results["postgres"])
    return results


def _print(backend: str, r: dict[str, Any]) -> None:
    print(
        f"{backend:8} {r['requests']} requests x {r['systems']} systems: "
        f"{r['throughput_rps']} req/s, {r['cpu_ms_per_request']} ms CPU/request, "
        f"{r['wall_ms_per_request']} ms wall/request",
        flush=True,
    )


if __name__ == "__main__":
    main()
