"""``python -m bench.ledger`` drives the ledger through whole requests and reports its
figures, on SQLite and, given a URL, on PostgreSQL."""

from __future__ import annotations

import pytest

from bench import ledger
from tests.fixtures.databases import POSTGRES_ADMIN_URL, postgres_reachable


def _figures(result: dict[str, object]) -> None:
    assert result["requests"] == 3 and result["systems"] == 5
    assert isinstance(result["throughput_rps"], float) and result["throughput_rps"] > 0
    assert isinstance(result["cpu_ms_per_request"], float) and result["cpu_ms_per_request"] >= 0


def test_the_ledger_bench_runs_whole_requests_on_sqlite(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DSR_BENCH_POSTGRES_URL", raising=False)
    results = ledger.main(["-n", "3"])
    assert set(results) == {"sqlite"}
    _figures(results["sqlite"])
    assert "req/s" in capsys.readouterr().out


@pytest.mark.postgres
def test_the_ledger_bench_runs_on_postgresql_given_its_url() -> None:
    if not postgres_reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    results = ledger.main(["-n", "3", "--postgres", POSTGRES_ADMIN_URL])
    _figures(results["postgres"])
