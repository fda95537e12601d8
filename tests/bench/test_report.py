"""The bench's targets table and its timed-systems summary, from a results file."""

from __future__ import annotations

from typing import Any

from bench import report


def _run(connector: str, rps: float, **fields: Any) -> dict[str, Any]:
    run = {
        "scenario": f"{connector}-r1000-s5-w1",
        "connector": connector,
        "requests": 1000,
        "systems": 5,
        "workers": 1,
        "rate": None,
        "sweeps": (),
        "cpu_s_per_request_total": 0.02,
        "latency_ms": {"p50": 100.0, "p99": 200.0},
        "throughput_rps": rps,
        "profile": False,
        "ledger": "sqlite",
    }
    return {**run, **fields}


def _baseline(connector: str, rps: float, requests: int) -> dict[str, Any]:
    return {
        "connector": connector,
        "requests": requests,
        "systems": 5,
        "throughput_rps": rps,
        "cpu_s_per_request_total": 0.015,
        "latency_ms": {"p50": 2400.0},
    }


RESULTS = {
    "pipeline": [
        # a profiled run of the same work is slower, and is not the one measured
        _run("noop", 20.0, profile=True),
        _run(
            "noop",
            120.0,
            sweeps=("workers",),
            idle_cpu_s_per_s={"worker-0": 0.03, "broker": 0.07},
        ),
        # two workers and one runner answer the same work faster, at a higher cost
        _run(
            "noop", 150.0, sweeps=("workers",), workers=2, runners=1, cpu_s_per_request_total=0.025
        ),
        _run("noop", 140.0, sweeps=("workers",), workers=2, runners=2),
        _run("noop", 50.0, rate=50, sweeps=("rate",), latency_ms={"p50": 90.0, "p99": 300.0}),
        _run("timed", 20.0, sweeps=("timed",)),
        _run("timed", 10.0, rate=10, sweeps=("timed",), latency_ms={"p50": 2100.0, "p99": 2200.0}),
    ],
    "baseline": [_baseline("noop", 60.0, 1000), _baseline("timed", 0.4, 10)],
}


def test_the_targets_are_judged_on_the_unprofiled_runs() -> None:
    table = {t["measure"]: (t["measured"], t["met"]) for t in report.targets(RESULTS)}
    # the layout that served the burst fastest, named; the cost is one worker's
    assert table["throughput at 5 systems, req/s (2 workers, 1 runner)"] == (150.0, False)
    assert table["ratio to the baseline at 5 systems (2 workers, 1 runner)"] == (2.5, True)
    assert table["p99 at 50 req/s, ms"] == (300.0, False)
    assert table["ratio to the baseline, timed systems"] == (50.0, True)
    assert table["CPU per request at 5 systems, ms (1 worker, 1 runner)"] == (20.0, False)
    batches = "PostgreSQL ledger statements, in the agents' batches, req/s"
    two = "PostgreSQL ledger statements, in batches, two clients side by side, req/s"
    alone = "PostgreSQL ledger statements, one request at a time, req/s"
    assert table[batches] == table[two] == table[alone] == (None, None)  # no ledger run
    ledger = {
        "postgres": {"throughput_rps": 60.0},
        "postgres_batches": {"throughput_rps": 250.0},
        "postgres_batches_2_clients": {"throughput_rps": 310.0},
    }
    table = {
        t["measure"]: (t["measured"], t["met"])
        for t in report.targets({**RESULTS, "ledger": ledger})
    }
    assert (table[batches], table[two], table[alone]) == (
        (250.0, False),
        (310.0, True),
        (60.0, False),
    )


def test_a_run_recorded_before_runners_were_counted_had_one_a_worker() -> None:
    assert report.layout(_run("noop", 1.0, workers=2)) == "2 workers, 2 runners"
    assert report.layout(_run("noop", 1.0)) == "1 worker, 1 runner"


def test_timed_systems_set_the_pipeline_beside_the_baseline_that_sums_them() -> None:
    timed = report.timed(RESULTS)
    assert timed is not None
    assert (timed["pipeline_rps"], timed["baseline_rps"], timed["throughput_ratio"]) == (
        20.0,
        0.4,
        50.0,
    )
    assert (timed["paced_p50_ms"], timed["baseline_p50_ms"]) == (2100.0, 2400.0)


def test_a_results_file_without_the_runs_says_nothing_rather_than_guessing() -> None:
    empty: dict[str, Any] = {"pipeline": [], "baseline": []}
    assert report.timed(empty) is None
    assert all(t["measured"] is None and t["met"] is None for t in report.targets(empty))


def test_the_idle_cost_comes_from_the_run_that_measured_it() -> None:
    assert report.idle(RESULTS) == {"worker-0": 0.03, "broker": 0.07}
    assert report.idle({"pipeline": [_run("noop", 120.0)], "baseline": []}) is None
