"""A capacity model built from measured CPU cost per request, checked against the runs.

Every stage of the pipeline is CPU-bound here (the connectors do no I/O), each process
runs its handlers on one core at a time, and each partition of a topic is read by one
member of its group at a time. So:

- a role (workers, runners, the broker) with ``n`` processes handles at most
  ``n / cpu_s_per_request`` requests per second, and no more members than partitions
  take part;
- processes sharing a machine's cores together handle at most
  ``cores / total cpu_s_per_request``;
- the pipeline runs at the lowest of these bounds.

The model takes the per-role costs from the single-worker run, predicts each
``workers`` run on this machine, and reports its error. Its projections for larger
deployments, where each worker and runner has a core of its own and the broker runs
elsewhere, use the costs measured with the most workers, which include what a second
worker adds (contention for the ledger and the cores).
"""

from __future__ import annotations

from typing import Any

#: Projected deployments: (worker processes, runner processes, partitions per topic).
DEPLOYMENTS = [(1, 1, 4), (2, 2, 4), (4, 4, 4), (4, 4, 16), (8, 8, 16), (16, 16, 32)]


def per_role(run: dict[str, Any]) -> tuple[dict[str, float], dict[str, int]]:
    """CPU seconds per request of each role, summed over its processes, and its process count."""
    cost: dict[str, float] = {}
    count: dict[str, int] = {}
    for name, seconds in run["cpu_s_per_request"].items():
        role = name.split("-")[0]
        cost[role] = cost.get(role, 0.0) + seconds
        count[role] = count.get(role, 0) + 1
    return cost, count


def predict_shared(cost: dict[str, float], count: dict[str, int], cores: int) -> float:
    """Requests/s with ``count`` processes of each role sharing ``cores``."""
    per_role_bound = min(count[role] / cost[role] for role in cost)
    return min(cores / sum(cost.values()), per_role_bound)


def predict_dedicated(cost: dict[str, float], workers: int, runners: int, partitions: int) -> float:
    """Requests/s when each worker and runner has a core and the broker is elsewhere."""
    return min(min(workers, partitions) / cost["worker"], min(runners, partitions) / cost["runner"])


def model(results: dict[str, Any]) -> dict[str, Any] | None:
    runs = sorted(
        (
            r
            for r in results["pipeline"]
            if "workers" in r["sweeps"] and r["rate"] is None and r["connector"] == "noop"
        ),
        key=lambda r: r["workers"],
    )
    if not runs or runs[0]["workers"] != 1 or not runs[0]["throughput_rps"]:
        return None
    cores = results["machine"]["cpus"] or 1
    base, _ = per_role(runs[0])
    checks = []
    for run in runs:
        cost, count = per_role(run)
        predicted = predict_shared(base, count, cores)
        measured = run["throughput_rps"] or 0.0
        error = round(100 * (predicted - measured) / measured, 1) if measured else None
        checks.append(
            {
                "workers": run["workers"],
                "measured_rps": measured,
                "predicted_rps": round(predicted, 1),
                "error_pct": error,
                "cpu_s_per_request": round(sum(cost.values()), 5),
            }
        )
    projection_cost, _ = per_role(runs[-1])
    return {
        "cpu_s_per_request_by_role": {k: round(v, 5) for k, v in base.items()},
        "projection_cost_by_role": {k: round(v, 5) for k, v in projection_cost.items()},
        "projection_cost_from": runs[-1]["scenario"],
        "this_machine": checks,
        "projected": [
            {
                "workers": w,
                "runners": r,
                "partitions": p,
                "rps": round(predict_dedicated(projection_cost, w, r, p), 1),
                "tasks_per_s": round(
                    predict_dedicated(projection_cost, w, r, p) * runs[0]["systems"], 1
                ),
            }
            for w, r, p in DEPLOYMENTS
        ],
    }
