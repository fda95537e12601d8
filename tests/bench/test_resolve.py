"""The benchmark's identity-resolution run: its data map, its directory, its summary."""

from __future__ import annotations

from typing import Any

from bench import report, workload
from bench.noop import DirectoryConnector
from services.datamap import parse


def test_the_resolve_data_map_needs_a_lookup_to_reach_four_of_five_systems() -> None:
    dm = parse(workload.datamap(5, "resolve"))
    assert dm.systems["sys00"].discovers == ["customer_id"]
    assert [s.keys for name, s in sorted(dm.systems.items()) if name != "sys00"] == [
        [("customer_id",)]
    ] * 4


def test_the_directory_finds_one_unit_per_email() -> None:
    directory = DirectoryConnector("sys00", {})
    assert directory.disclose({"email": "a@example.jp"}).identities == [
        {"email": "a@example.jp", "customer_id": "C-a@example.jp"}
    ]
    assert directory.disclose({"customer_id": "C-1"}).identities == []


def _run(connector: str, cpu: float, p50: float, sweeps: tuple[str, ...]) -> dict[str, Any]:
    return {
        "scenario": f"{connector}-r300-s5-w1",
        "connector": connector,
        "requests": 300,
        "systems": 5,
        "workers": 1,
        "rate": None,
        "sweeps": sweeps,
        "cpu_s_per_request_total": cpu,
        "latency_ms": {"p50": p50, "p99": p50 * 2},
        "throughput_rps": 40.0,
    }


def test_the_lookup_phase_is_the_resolve_run_less_the_plain_one() -> None:
    results = {
        "pipeline": [
            _run("noop", 0.030, 100.0, ("load",)),
            _run("resolve", 0.036, 130.0, ("resolve",)),
        ]
    }
    phase = report.lookup_phase(results)
    assert phase is not None
    assert phase["cpu_s_per_request_added"] == 0.006
    assert phase["p50_ms"] == [100.0, 130.0]
    assert report.lookup_phase({"pipeline": results["pipeline"][:1]}) is None
