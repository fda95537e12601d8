"""The synchronous baseline answers every request it is given, and tells its principal,
as the pipeline does: a ratio to a baseline that did less would mean nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import baseline
from bench.noop import NoopConnector
from bench.pipeline import Scenario
from connectors import OperationResult


@pytest.mark.parametrize("connector", ["noop", "resolve"])
def test_the_baseline_answers_every_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connector: str
) -> None:
    monkeypatch.setenv("DSR_HOME", str(tmp_path))  # baseline.run sets it; restored after
    result = baseline.run(Scenario(12, 3, connector=connector), tmp_path)
    assert result["completed"] == result["requests"] == 12
    told = sorted(p.parent.name for p in (tmp_path / "outbox").glob("*/*:response:1.eml"))
    assert len(told) == 12 and len(set(told)) == 12  # each request's response notice


def test_the_baseline_calls_each_system_with_the_subject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tasks cross sealed, as in the pipeline: the baseline opens them as a runner
    does, so its connectors see the identifiers (a sealed task looks empty)."""
    seen: list[dict[str, str]] = []

    def disclose(self: NoopConnector, identifiers: dict[str, str]) -> OperationResult:
        seen.append(dict(identifiers))
        return OperationResult()

    monkeypatch.setattr(NoopConnector, "disclose", disclose)
    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    result = baseline.run(Scenario(2, 3), tmp_path)
    assert result["completed"] == 2
    assert len(seen) == 6 and all(s.get("email") for s in seen)
