from typing import Any

from bench import capacity, report


def _run(workers: int, rps: float, cpu: dict[str, float], **extra: Any) -> dict[str, Any]:
    return {
        "scenario": f"noop-r1000-s5-w{workers}",
        "requests": 1000,
        "systems": 5,
        "workers": workers,
        "connector": "noop",
        "rate": None,
        "sweeps": ("workers",),
        "throughput_rps": rps,
        "cpu_s_per_request": cpu,
        **extra,
    }


RESULTS = {
    "machine": {"cpus": 2},
    "pipeline": [
        _run(1, 40.0, {"worker-0": 0.03, "runner-0": 0.01, "broker": 0.01}),
        _run(
            2,
            36.0,
            {
                "worker-0": 0.016,
                "worker-1": 0.016,
                "runner-0": 0.006,
                "runner-1": 0.006,
                "broker": 0.01,
            },
        ),
    ],
    "baseline": [],
}


def test_costs_are_summed_per_role() -> None:
    assert capacity.per_role(RESULTS["pipeline"][1]) == (
        {"worker": 0.032, "runner": 0.012, "broker": 0.01},
        {"worker": 2, "runner": 2, "broker": 1},
    )


def test_the_model_is_checked_against_every_measured_worker_count() -> None:
    model = capacity.model(RESULTS)
    assert model is not None
    # one worker: its 0.03 s a request bounds it at 33.3 req/s, under the cores' 40
    # two workers: 2 cores / 0.05 s a request = 40 req/s
    assert [(c["workers"], c["predicted_rps"], c["error_pct"]) for c in model["this_machine"]] == [
        (1, 33.3, -16.7),
        (2, 40.0, 11.1),
    ]


def test_projections_use_the_most_workers_costs_and_the_partition_count() -> None:
    model = capacity.model(RESULTS)
    assert model is not None
    assert model["projection_cost_from"] == "noop-r1000-s5-w2"
    by_shape = {(p["workers"], p["partitions"]): p["rps"] for p in model["projected"]}
    assert by_shape[(1, 4)] == round(1 / 0.032, 1)  # workers cost more than runners
    assert by_shape[(4, 4)] == round(4 / 0.032, 1)
    assert by_shape[(8, 16)] == round(8 / 0.032, 1)
    # more processes than partitions: the extra ones idle
    assert capacity.predict_dedicated({"worker": 0.03, "runner": 0.01}, 8, 8, 4) == 4 / 0.03


def test_no_single_worker_run_means_no_model() -> None:
    assert capacity.model({**RESULTS, "pipeline": RESULTS["pipeline"][1:]}) is None


def test_memory_growth_is_the_slope_over_the_second_half() -> None:
    flat = {
        "completed": 1000,
        "worker_rss_mb_by_completed": [(n, 100.0) for n in range(0, 1001, 50)],
    }
    growing = {
        "completed": 1000,
        "worker_rss_mb_by_completed": [(n, 100 + n / 100) for n in range(0, 1001, 50)],
    }
    assert report.memory_growth(flat) == 0.0
    assert report.memory_growth(growing) == 10.0
