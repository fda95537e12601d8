"""``dsr extend`` and ``dsr refuse`` report the outcome the worker recorded, and never say
"done" when nothing recorded it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.broker import EmbeddedBroker, create_topics
from services.cli import app
from services.ledger import Ledger
from streams.topics import core_topics


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home with a ledger and a real broker, and no worker reading the decisions."""
    broker = EmbeddedBroker.start()
    try:
        create_topics(broker.bootstrap, core_topics())
        for name in list(os.environ):
            if name.startswith("DSR_"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("DSR_HOME", str(tmp_path))
        monkeypatch.setenv("DSR_KAFKA_BOOTSTRAP", broker.bootstrap)
        made = CliRunner().invoke(app, ["keys", "init"])  # as a deployment does first
        assert made.exit_code == 0, made.output
        Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").migrate()
        yield tmp_path
    finally:
        broker.stop()


@pytest.mark.parametrize(
    "args",
    [
        ["extend", "r-1", "--reason", "Many systems.", "--by", "op-1"],
        ["refuse", "r-1", "--ground", "harm_to_principal_or_third_party"]
        + ["--reason", "A third party's complaint.", "--by", "op-1"],
    ],
)
def test_with_no_worker_the_command_says_nothing_recorded_it_and_fails(
    home: Path, args: list[str]
) -> None:
    done = CliRunner().invoke(app, [*args, "--wait", "1"])
    assert done.exit_code == 2, done.output
    assert "no worker recorded it within 1 s" in done.output
    assert "Extended" not in done.output and "Refused" not in done.output
