"""The worker's Faust app, as it is made before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from services.settings import Settings
from streams.app import _transient_db, create_app


def test_the_app_makes_its_data_directory_in_a_home_nothing_has_written_to(
    tmp_path: Path,
) -> None:
    home = tmp_path / "fresh"
    app = create_app(Settings(home=home, kafka_bootstrap="127.0.0.1:9"))
    # Faust itself makes only the last level, as the worker starts: a missing run/
    # stopped the worker at start-up
    assert Path(app.conf.datadir).is_dir()
    assert Path(app.conf.datadir).parent == home / "run"


LOCKED = OperationalError("BEGIN", {}, Exception("database is locked"))


class _Locked:
    """A ledger operation that fails with ``error`` its first ``times`` calls."""

    def __init__(self, times: int, error: Exception = LOCKED) -> None:
        self.times, self.error, self.calls = times, error, 0

    def __call__(self, value: str) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return value


def test_a_ledger_operation_runs_again_while_the_ledger_is_locked() -> None:
    op = _Locked(times=2)
    assert _transient_db(op)("done") == "done" and op.calls == 3


def test_a_ledger_operation_gives_up_after_five_attempts() -> None:
    op = _Locked(times=5)
    with pytest.raises(OperationalError):
        _transient_db(op)("never")
    assert op.calls == 5


def test_a_fault_that_is_not_transient_is_not_run_again() -> None:
    op = _Locked(times=1, error=KeyError("not transient"))
    with pytest.raises(KeyError):
        _transient_db(op)("never")
    assert op.calls == 1
