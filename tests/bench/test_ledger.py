"""``python -m bench.ledger`` drives the ledger through whole requests and reports its
figures, on SQLite and, given a URL, on PostgreSQL."""

from __future__ import annotations

import pytest

from bench import ledger
from tests.fixtures.databases import POSTGRES_ADMIN_URL, postgres_reachable


def _figures(result: dict[str, object], batch: int, clients: int = 1) -> None:
    assert result["requests"] == 5 and result["systems"] == 5 and result["batch"] == batch
    assert result["clients"] == clients
    assert isinstance(result["throughput_rps"], float) and result["throughput_rps"] > 0
    assert isinstance(result["cpu_ms_per_request"], float) and result["cpu_ms_per_request"] >= 0


def test_the_ledger_bench_runs_whole_requests_on_sqlite(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DSR_BENCH_POSTGRES_URL", raising=False)
    results = ledger.main(["-n", "5", "--batch", "2"])  # batches of 2, 2 and 1
    assert set(results) == {"sqlite", "sqlite_batches", "sqlite_batches_2_clients"}
    _figures(results["sqlite"], 1)
    _figures(results["sqlite_batches"], 2)
    _figures(results["sqlite_batches_2_clients"], 2, clients=2)  # 2 and 3 requests
    assert "2 clients side by side" in capsys.readouterr().out


@pytest.mark.postgres
def test_the_ledger_bench_runs_on_postgresql_given_its_url() -> None:
    if not postgres_reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    results = ledger.main(["-n", "5", "--batch", "2", "--postgres", POSTGRES_ADMIN_URL])
    _figures(results["postgres"], 1)
    _figures(results["postgres_batches"], 2)
    _figures(results["postgres_batches_2_clients"], 2, clients=2)
