"""``dsr reconcile``'s own checks, before it reaches the broker or the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app


def test_a_time_it_cannot_read_is_refused_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    done = CliRunner().invoke(app, ["reconcile", "--since", "yesterday"])
    assert done.exit_code == 2
    assert "--since: not an ISO 8601 time: 'yesterday'" in done.output
    assert not (tmp_path / "ledger.db").exists()  # nothing was opened
