"""``python -m bench``: run every scenario, write bench/results/*.json and a plot.

python -m bench                     # the full sweep (make bench)
python -m bench --quick             # small sizes, to try the harness
python -m bench --summarise FILE    # recompute a results file's summary, table and plot
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import baseline, ledger, pipeline, report, workload
from bench.pipeline import Scenario

RESULTS = Path(__file__).parent / "results"


def scenarios(quick: bool) -> tuple[list[Scenario], list[Scenario]]:
    """The pipeline runs and the baseline runs: three sweeps from one base point."""
    n = 300 if quick else 1000
    big = 1000 if quick else 10_000
    runs = [
        Scenario(100, 5, sweeps=("load",), idle_s=5.0 if quick else 20.0),
        Scenario(n, 5, sweeps=("load", "systems", "workers")),
        Scenario(big, 5, sweeps=("load",)),
        Scenario(n, 1, sweeps=("systems",)),
        Scenario(n // 4, 20, sweeps=("systems",)),
        Scenario(n, 5, workers=2, sweeps=("workers",)),
        # the production ledger, with the same two workers
        Scenario(n, 5, workers=2, ledger="postgres", sweeps=("postgres",)),
        Scenario(n // 4, 5, rate=25, sweeps=("rate",)),
        Scenario(n // 2, 5, rate=50, sweeps=("rate",)),
        Scenario(n // 2, 5, connector="sql", sweeps=("sql",)),
        # the identity lookup phase: one directory resolves the key the other four use
        Scenario(n, 5, connector="resolve", sweeps=("resolve",)),
        # systems that take a real system's time: one 2 s a call, four 20 to 300 ms
        Scenario(n // 2, 5, connector="timed", sweeps=("timed",)),
        Scenario(n // 5, 5, connector="timed", rate=10, sweeps=("timed",)),
        # where the CPU goes, sampled in a run of its own (the sampler takes CPU too)
        Scenario(n, 5, profile=True, sweeps=("profile",)),
    ]
    base = [
        Scenario(n, 1),
        Scenario(n, 5),
        Scenario(n // 4, 20),
        Scenario(n // 2, 5, connector="sql"),
        Scenario(5 if quick else 10, 5, connector="timed"),
    ]
    return runs, base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--summarise", type=Path, metavar="FILE", help="a results file")
    args = parser.parse_args(argv)
    if args.summarise:
        return _summarise(args.summarise)
    runs, base = scenarios(args.quick)
    started = time.time()
    results: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": {
            "cpus": _cpus(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # A fixed pure-Python loop, so runs on different days or hosts can be compared.
            "python_loop_10m_s": _python_loop_s(),
        },
        "quick": args.quick,
        "pipeline": [],
        "baseline": [],
    }
    work = Path(tempfile.mkdtemp(prefix="dsr-bench-"))
    try:
        for s in runs:
            if s.ledger == "postgres" and not workload.postgres_reachable():
                print(f"pipeline {s.name}: skipped, no PostgreSQL (make postgres)", flush=True)
                continue
            print(f"pipeline {s.name} …", flush=True)
            r = pipeline.run(s, work / s.name)
            print(f"  {_line(r)}", flush=True)
            results["pipeline"].append(r)
        for s in base:
            print(f"baseline {s.name} …", flush=True)
            r = baseline.run(s, work / ("baseline-" + s.name))
            print(f"  {_line(r)}", flush=True)
            results["baseline"].append(r)
        # the ledger's statements alone, on SQLite and (when it runs) PostgreSQL
        postgres = ["--postgres", workload.POSTGRES_URL] if workload.postgres_reachable() else []
        results["ledger"] = ledger.main(["--requests", "200" if args.quick else "1000", *postgres])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["wall_s"] = round(time.time() - started, 1)
    results["machine"]["python_loop_10m_s_at_end"] = _python_loop_s()
    results["summary"] = report.summary(results)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    text = json.dumps(results, indent=2) + "\n"
    (args.out / f"{stamp}.json").write_text(text)
    (args.out / "latest.json").write_text(text)
    report.plot(results, args.out / "latest.png")
    print(report.render(results))
    print(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.png'}")
    lost = sum(r["lost"] for r in results["pipeline"])
    lost += sum(r["requests"] - r["completed"] for r in results["baseline"])
    return 1 if lost else 0


def _summarise(path: Path) -> int:
    results = json.loads(path.read_text())
    results["summary"] = report.summary(results)
    path.write_text(json.dumps(results, indent=2) + "\n")
    report.plot(results, path.with_suffix(".png"))
    print(report.render(results))
    return 0


def _line(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    return (
        f"{r['completed']}/{r['requests']} done, {r['throughput_rps']} req/s, "
        f"p50 {lat['p50']} ms, p99 {lat['p99']} ms, cpu {r['cpu_s_per_request_total']} s/req"
    )


def _python_loop_s() -> float:
    t0 = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return round(time.perf_counter() - t0, 2)


def _cpus() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    sys.exit(main())
