"""The synchronous baseline answers every request it is given: a ratio to a baseline
that answered nothing would mean nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import baseline
from bench.pipeline import Scenario


@pytest.mark.parametrize("connector", ["noop", "resolve"])
def test_the_baseline_answers_every_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connector: str
) -> None:
    monkeypatch.setenv("DSR_HOME", str(tmp_path))  # baseline.run sets it; restored after
    result = baseline.run(Scenario(12, 3, connector=connector), tmp_path)
    assert result["completed"] == result["requests"] == 12
