"""Summaries of a benchmark's results: the headline figures, a table, a plot."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

from bench import capacity, workload


def sweep(results: dict[str, Any], name: str, x: str) -> list[dict[str, Any]]:
    """The pipeline runs of one sweep, ordered by its variable ``x``."""
    return sorted((r for r in results["pipeline"] if name in r["sweeps"]), key=lambda r: r[x])


def memory_growth(run: dict[str, Any]) -> float | None:
    """Worker RSS growth in MiB per 1,000 completed requests, over the run's second half."""
    half = [(n, mb) for n, mb in run["worker_rss_mb_by_completed"] if n >= run["completed"] / 2]
    if len(half) < 3:
        return None
    xs, ys = [n for n, _ in half], [mb for _, mb in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
    return round(slope * 1000, 2)


def baseline_ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each baseline run beside the single-worker pipeline run of the same work."""
    out = []
    for b in results["baseline"]:
        p = _run(results, requests=b["requests"], systems=b["systems"], connector=b["connector"])
        if p is None or not b["throughput_rps"]:
            continue
        out.append(
            {
                "work": f"{b['requests']} requests x {b['systems']} systems, {b['connector']}",
                "pipeline_rps": p["throughput_rps"],
                "baseline_rps": b["throughput_rps"],
                "throughput_ratio": round(p["throughput_rps"] / b["throughput_rps"], 2),
                "pipeline_cpu_s_per_request": p["cpu_s_per_request_total"],
                "baseline_cpu_s_per_request": b["cpu_s_per_request_total"],
                "baseline_p50_ms": b["latency_ms"]["p50"],
            }
        )
    return out


def lookup_phase(results: dict[str, Any]) -> dict[str, Any] | None:
    """What resolving the identity graph first costs a request: the ``resolve`` run (one
    lookup in a directory, then five actions) against the no-op run of the same size
    (five actions, nothing to resolve), from the same session."""
    runs = sweep(results, "resolve", "requests")
    if not runs:
        return None
    resolve = runs[0]
    plain = next(
        (
            r
            for r in results["pipeline"]
            if r["connector"] == "noop"
            and (r["requests"], r["systems"], r["workers"]) == (resolve["requests"], 5, 1)
            and r["rate"] is None
        ),
        None,
    )
    if plain is None:
        return None
    return {
        "runs": [plain["scenario"], resolve["scenario"]],
        "cpu_s_per_request": [plain["cpu_s_per_request_total"], resolve["cpu_s_per_request_total"]],
        "cpu_s_per_request_added": round(
            resolve["cpu_s_per_request_total"] - plain["cpu_s_per_request_total"], 5
        ),
        "p50_ms": [plain["latency_ms"]["p50"], resolve["latency_ms"]["p50"]],
        "p99_ms": [plain["latency_ms"]["p99"], resolve["latency_ms"]["p99"]],
        "throughput_rps": [plain["throughput_rps"], resolve["throughput_rps"]],
    }


#: What a run without these fields (recorded before they were added) was.
_PLAIN: dict[str, Any] = {"profile": False, "ledger": "sqlite"}


def _run(results: dict[str, Any], **match: Any) -> dict[str, Any] | None:
    """The first pipeline run whose fields equal ``match`` (burst, one worker, SQLite and
    unprofiled unless said)."""
    want = {**_PLAIN, "workers": 1, "rate": None, **match}
    return next(
        (
            r
            for r in results["pipeline"]
            if all(r.get(k, _PLAIN.get(k)) == v for k, v in want.items())
        ),
        None,
    )


def timed(results: dict[str, Any]) -> dict[str, Any] | None:
    """Systems that take a real system's time (one 2 s a call, four 20 to 300 ms): the
    pipeline runs them side by side, the baseline one after another."""
    burst = _run(results, connector="timed")
    paced = next((r for r in sweep(results, "timed", "requests") if r["rate"]), None)
    base = next((b for b in results["baseline"] if b["connector"] == "timed"), None)
    if burst is None or base is None or not base["throughput_rps"]:
        return None
    return {
        "slowest_system_s": workload.SLOWEST_S,
        "pipeline_rps": burst["throughput_rps"],
        "baseline_rps": base["throughput_rps"],
        "throughput_ratio": round((burst["throughput_rps"] or 0) / base["throughput_rps"], 1),
        "baseline_p50_ms": base["latency_ms"]["p50"],
        "paced_rate": paced["rate"] if paced else None,
        "paced_p50_ms": paced["latency_ms"]["p50"] if paced else None,
        "paced_p99_ms": paced["latency_ms"]["p99"] if paced else None,
    }


def breakdown(results: dict[str, Any]) -> dict[str, Any] | None:
    """CPU milliseconds per request by component, from the profiled run."""
    run = next((r for r in results["pipeline"] if r.get("profile")), None)
    if run is None or not run.get("cpu_ms_per_request_by_component"):
        return None
    return {
        "run": run["scenario"],
        "cpu_s_per_request": run["cpu_s_per_request"],
        "ms_per_request": run["cpu_ms_per_request_by_component"],
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The pipeline's targets beside what this run measured."""
    base = next(
        (b for b in results["baseline"] if (b["systems"], b["connector"]) == (5, "noop")), None
    )
    five = _run(results, connector="noop", systems=5, requests=base["requests"] if base else None)
    fastest = fastest_layout(results)
    ratio = (
        round(fastest["throughput_rps"] / base["throughput_rps"], 2)
        if fastest and base and fastest["throughput_rps"] and base["throughput_rps"]
        else None
    )
    on = f" ({layout(fastest)})" if fastest else ""
    paced = next((r for r in sweep(results, "rate", "rate") if r["rate"] == 50), None)
    slow = timed(results)
    cpu_ms = five["cpu_s_per_request_total"] * 1000 if five else None
    rows: list[tuple[str, float | None, str, float]] = [
        (
            f"throughput at 5 systems, req/s{on}",
            fastest["throughput_rps"] if fastest else None,
            ">=",
            300,
        ),
        (f"ratio to the baseline at 5 systems{on}", ratio, ">=", 2),
        ("p99 at 50 req/s, ms", paced["latency_ms"]["p99"] if paced else None, "<", 250),
        (
            "ratio to the baseline, timed systems",
            slow["throughput_ratio"] if slow else None,
            ">=",
            5,
        ),
        (
            "CPU per request at 5 systems, ms (1 worker, 1 runner)",
            round(cpu_ms, 1) if cpu_ms else None,
            "<=",
            6.7,
        ),
        (
            "PostgreSQL ledger statements, in the agents' batches, req/s",
            _ledger_rps(results, "postgres_batches"),
            ">=",
            300,
        ),
        (
            "PostgreSQL ledger statements, in batches, two clients side by side, req/s",
            _ledger_rps(results, "postgres_batches_2_clients"),
            ">=",
            300,
        ),
        (
            "PostgreSQL ledger statements, one request at a time, req/s",
            _ledger_rps(results, "postgres"),
            ">=",
            300,
        ),
    ]
    compare = {">=": operator.ge, "<": operator.lt, "<=": operator.le}
    return [
        {
            "measure": what,
            "measured": value,
            "target": f"{op} {target}",
            "met": None if value is None else compare[op](value, target),
        }
        for what, value, op, target in rows
    ]


def fastest_layout(results: dict[str, Any]) -> dict[str, Any] | None:
    """Of the runs of one burst of 5-system requests on SQLite that differ only in their
    processes (the ``workers`` sweep), the one that answered them fastest: the layout
    this machine's cores serve best."""
    runs = [
        r
        for r in sweep(results, "workers", "workers")
        if r["connector"] == "noop"
        and r["systems"] == 5
        and r.get("ledger", "sqlite") == "sqlite"
        and not r.get("profile")
        and r["rate"] is None
        and r["throughput_rps"]
    ]
    return max(runs, key=lambda r: r["throughput_rps"], default=None)


def layout(run: dict[str, Any]) -> str:
    """``run``'s processes, e.g. "2 workers, 1 runner" (runs recorded before the runners
    were counted had one a worker)."""
    workers = run["workers"]
    runners = run.get("runners", workers)
    return f"{workers} worker{'s' * (workers > 1)}, {runners} runner{'s' * (runners > 1)}"


def _ledger_rps(results: dict[str, Any], backend: str) -> float | None:
    """The ledger's statements alone (``bench.ledger``), in requests a second: one at a
    time (``sqlite``, ``postgres``), in batches (``sqlite_batches`` …), or in batches by
    two clients side by side (``sqlite_batches_2_clients`` …); files from before a way
    was measured have none of it."""
    run = results.get("ledger", {}).get(backend)
    return run["throughput_rps"] if run else None


def summary(results: dict[str, Any]) -> dict[str, Any]:
    load = sweep(results, "load", "requests")
    largest = load[-1]
    paced = {r["rate"]: r["latency_ms"]["p99"] for r in sweep(results, "rate", "rate")}
    burst = [r for r in results["pipeline"] if r["rate"] is None]
    best = max(burst, key=lambda r: r["throughput_rps"] or 0)
    starts = [
        r["worker_start_to_first_task_s"]
        for r in results["pipeline"]
        if r["worker_start_to_first_task_s"] is not None
    ]
    return {
        "p99_ms_at_steady_rate_5_systems": paced,
        "max_throughput_rps": best["throughput_rps"],
        "max_throughput_scenario": best["scenario"],
        "tasks_per_s_at_max": round((best["throughput_rps"] or 0) * best["systems"], 1),
        "worker_start_to_first_task_s": {"min": min(starts), "max": max(starts)}
        if starts
        else None,
        "largest_run": largest["scenario"],
        "memory_growth_mib_per_1000_requests": memory_growth(largest),
        "peak_rss_mb_largest_run": largest["peak_rss_mb"],
        "throughput_rps_by_systems": {
            r["systems"]: r["throughput_rps"] for r in sweep(results, "systems", "systems")
        },
        "p50_ms_per_task_by_systems": {
            r["systems"]: round(1000 / r["throughput_rps"] / r["systems"], 2)
            for r in sweep(results, "systems", "systems")
            if r["throughput_rps"]
        },
        "throughput_rps_by_layout": {
            layout(r): r["throughput_rps"] for r in sweep(results, "workers", "workers")
        },
        "baseline": baseline_ratios(results),
        "lookup_phase": lookup_phase(results),
        "timed_systems": timed(results),
        "postgres_two_workers": _postgres(results),
        "cpu_breakdown": breakdown(results),
        "idle_cpu_s_per_s": idle(results),
        "ledger_rps": {
            b: _ledger_rps(results, b)
            for db in ("sqlite", "postgres")
            for b in (db, f"{db}_batches", f"{db}_batches_2_clients")
        },
        "targets": targets(results),
        "capacity": capacity.model(results),
        "lost": sum(r["lost"] for r in results["pipeline"]),
    }


def idle(results: dict[str, Any]) -> dict[str, float] | None:
    """Each process's CPU seconds a second with no requests, from the run that measured
    it (files from before it was measured have none)."""
    runs = [r["idle_cpu_s_per_s"] for r in results["pipeline"] if r.get("idle_cpu_s_per_s")]
    return runs[0] if runs else None


def _postgres(results: dict[str, Any]) -> dict[str, Any] | None:
    """The two-worker run on PostgreSQL beside the same on SQLite."""
    pg = _run(results, workers=2, ledger="postgres")
    lite = _run(results, workers=2, connector="noop")
    if pg is None or lite is None:
        return None
    return {
        "runs": [lite["scenario"], pg["scenario"]],
        "throughput_rps": [lite["throughput_rps"], pg["throughput_rps"]],
        "p99_ms": [lite["latency_ms"]["p99"], pg["latency_ms"]["p99"]],
        "cpu_s_per_request": [lite["cpu_s_per_request_total"], pg["cpu_s_per_request_total"]],
    }


def render(results: dict[str, Any]) -> str:
    rows = ["| target | measured | wanted | met |", "|---|---|---|---|"]
    rows += [
        f"| {t['measure']} | {t['measured']} | {t['target']} | "
        f"{'-' if t['met'] is None else 'yes' if t['met'] else 'no'} |"
        for t in targets(results)
    ]
    rows += [
        "",
        "| run | done | req/s | p50 ms | p95 ms | p99 ms | CPU s/req | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["pipeline"] + results["baseline"]:
        lat = r["latency_ms"]
        rss = ", ".join(f"{k} {round(v)}" for k, v in r["peak_rss_mb"].items())
        rows.append(
            f"| {r['scenario']} | {r['completed']}/{r['requests']} | {r['throughput_rps']} | "
            f"{lat['p50']} | {lat['p95']} | {lat['p99']} | {r['cpu_s_per_request_total']} | "
            f"{rss} |"
        )
    model = capacity.model(results)
    if model:
        rows += ["", "| projected: workers | runners | partitions | req/s | tasks/s |"]
        rows.append("|---|---|---|---|---|")
        rows += [
            f"| {p['workers']} | {p['runners']} | {p['partitions']} | {p['rps']} "
            f"| {p['tasks_per_s']} |"
            for p in model["projected"]
        ]
    return "\n".join(rows)


def plot(results: dict[str, Any], path: Path) -> None:
    """Latency against load, against a steady rate, and against the number of systems."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (name, x, label) in zip(
        axes,
        [
            ("load", "requests", "requests submitted at once (5 systems)"),
            ("rate", "rate", "requests/s, submitted steadily (5 systems)"),
            ("systems", "systems", "systems per request"),
        ],
        strict=True,
    ):
        runs = sweep(results, name, x)
        for q in ("p50", "p95", "p99"):
            ax.plot([r[x] for r in runs], [r["latency_ms"][q] for r in runs], marker="o", label=q)
        ax.set_xlabel(label)
        ax.set_ylabel("submit → response, ms")
        if name == "load":
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("dsr-pipeline: end-to-end latency (embedded broker, no-op connectors, 2 cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
