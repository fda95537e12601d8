"""A stuck process is told from a live one: a runner frozen with SIGSTOP stops beating, so
`dsr health` (a container's probe), `dsr ps` and `dsr top` say so; it beats again once thawed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from services import heartbeat
from tests.integration.fixtures import dsr_up_process, running, settings_for, wait_for

pytestmark = pytest.mark.integration


def dsr(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSR_")}
    env["DSR_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_frozen_runner_stops_beating_and_is_reported(tmp_path: Path) -> None:
    settings_for(tmp_path)
    with dsr_up_process(tmp_path, env={"DSR_HEARTBEAT_INTERVAL_S": "0.5"}):
        worker = wait_for("the worker", lambda: running(tmp_path, "worker-0"))
        runner = wait_for("the runner", lambda: running(tmp_path, "runner-0"))
        wait_for(
            "both to beat",
            lambda: {"worker-0", "runner-0"} <= set(heartbeat.read(tmp_path)),
        )
        beats = heartbeat.read(tmp_path)
        assert (beats["worker-0"].pid, beats["runner-0"].pid) == (worker, runner)
        assert (beats["worker-0"].kind, beats["runner-0"].kind) == ("worker", "runner")
        healthy = dsr(tmp_path, "health", "--max-age", "5")
        assert healthy.returncode == 0, healthy.stderr

        os.kill(runner, signal.SIGSTOP)
        try:
            stale = wait_for(
                "the frozen runner to fail its probe",
                lambda: (r := dsr(tmp_path, "health", "--max-age", "3")).returncode == 1 and r,
            )
            assert "runner-0: last heartbeat" in stale.stderr
            assert "worker-0" not in stale.stderr, "the worker still beats"
            assert dsr(tmp_path, "health", "worker-0", "--max-age", "3").returncode == 0
            # dsr top tells a frozen runner from a slow system
            top = wait_for(
                "dsr top to show the runner frozen",
                lambda: "frozen" in (out := dsr(tmp_path, "top", "--once").stdout) and out,
                timeout=heartbeat.FROZEN_AFTER_S + 60,
            )
            [line] = [x for x in top.splitlines() if "runner-0" in x and "frozen" in x]
            assert "worker-0" not in line
        finally:
            os.kill(runner, signal.SIGCONT)
        wait_for(
            "the thawed runner to beat again",
            lambda: dsr(tmp_path, "health", "runner-0", "--max-age", "3").returncode == 0,
        )


def test_health_fails_where_nothing_beats(tmp_path: Path) -> None:
    done = dsr(tmp_path, "health")
    assert done.returncode == 1 and "no heartbeat" in done.stderr
    assert dsr(tmp_path, "health", "worker-0").returncode == 1
