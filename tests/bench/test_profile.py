"""The CPU breakdown: samples sorted into components, and a real sampled process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import profile

LEDGER = (
    "<module> (streams/__main__.py:3);handle (streams/agents/respond.py:149);"
    "Tasks.complete (services/ledger/tasks.py:215);execute (sqlalchemy/engine/base.py:1)"
)
JSON_IN_LEDGER = (
    "handle (streams/agents/fanout.py:9);plan (services/ledger/tasks.py:74);"
    "dumps (json/__init__.py:231)"
)
LOGGING = (
    "handle (streams/agents/intake.py:1);info (services/ledger/base.py:9);"
    "emit (logging/__init__.py:1)"
)


def test_a_sample_counts_for_its_innermost_component() -> None:
    assert profile.component(LEDGER) == "ledger statements"
    assert profile.component(JSON_IN_LEDGER) == "ledger statements"  # stdlib takes its caller's
    assert profile.component(LOGGING) == "logging"
    assert profile.component("main (<frozen runpy>:1)") == "other"


def test_shares_add_up_to_one_and_weigh_each_stack_by_its_count() -> None:
    raw = f"{LEDGER} 3\n{LOGGING} 1\nnot a sample line\n"
    assert profile.shares(raw) == {"ledger statements": 0.75, "logging": 0.25}
    assert profile.shares("") == {}


def test_a_garbled_stack_is_no_sample() -> None:
    """A string read for a frame's name splits a stack over lines; its last line may
    end in a number (a date), which is not a count of samples."""
    garbled = f"{LEDGER};handle (streams/app.py:1);Your answer\nDeadline: 22 Dec 2026\n"
    assert profile.shares(f"{LOGGING} 1\n{garbled}") == {"logging": 1.0}


def test_shares_become_milliseconds_per_request_of_each_process() -> None:
    ms = profile.per_request_ms(
        {"worker-0": {"ledger statements": 0.5, "other": 0.5}}, {"worker-0": 0.02}
    )
    assert ms == {"worker-0": {"ledger statements": 10.0, "other": 10.0}}


#: About two seconds of logging, then the process ends (and py-spy with it).
BUSY = """
import logging
logging.basicConfig(level=logging.INFO, stream=open("/dev/null", "w"))
for _ in range(100_000):
    logging.getLogger("x").info("busy")
"""


@pytest.mark.skipif(profile.Sampler.program() is None, reason="py-spy is not installed")
def test_a_process_busy_logging_is_profiled_as_logging(tmp_path: Path) -> None:
    busy = subprocess.Popen([sys.executable, "-c", BUSY])
    sampler = profile.Sampler({"busy": busy.pid}, tmp_path, rate=200)
    sampler.start()
    assert busy.wait(timeout=120) == 0
    shares = sampler.stop()["busy"]
    assert max(shares, key=lambda c: shares[c]) == "logging"
