"""`dsr up` keeps the stack alive: a worker, a runner and the broker are each killed with
SIGKILL from outside, and `dsr up` alone brings them back. Every request completes once."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.client import Submitter
from services.demo.scenario import HANAKO, JIRO, TARO, event
from services.faults import STARTUP_POINTS, crash_marker
from services.ledger import Ledger
from services.settings import Settings
from tests.integration.fixtures import (
    clean_env,
    dsr_up_process,
    processes,
    running,
    settings_for,
    wait_for,
)

pytestmark = pytest.mark.integration

BURST = 15


@pytest.fixture
def dsr_up(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    settings_for(tmp_path)  # seeds the demo's systems and data map under tmp_path
    with dsr_up_process(tmp_path) as up:
        yield up


def _burst(home: Path, prefix: str) -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(BURST)]
    subjects = [TARO, HANAKO, JIRO]
    bootstrap = (home / "broker.addr").read_text().strip()
    submitter = Submitter.from_settings(Settings(home=home), bootstrap)
    try:
        submitter.submit_all(
            [
                json.dumps(event(r, "disclosure", subjects[i % 3])).encode()
                for i, r in enumerate(ids)
            ]
        )
    finally:
        submitter.close()
    return ids


def _completed(ledger: Ledger, ids: list[str]) -> bool:
    return all((r := ledger.request(i)) is not None and r.status == "completed" for i in ids)


def test_dsr_up_restarts_what_is_killed(tmp_path: Path, dsr_up: subprocess.Popen[bytes]) -> None:
    home = tmp_path
    for name in ("broker", "worker-0", "runner-0"):
        wait_for(f"{name} to run", lambda n=name: running(home, n), timeout=90)
    ledger = Ledger(f"sqlite:///{home / 'ledger.db'}")
    done: list[str] = []
    for victim, prefix in (("worker-0", "w"), ("runner-0", "r"), ("broker", "b")):
        pid = running(home, victim)
        assert pid is not None
        ids = _burst(home, prefix)
        if victim == "broker":
            # an in-memory broker loses what it holds: kill it once the ledger has every request
            wait_for("admission", lambda ids=ids: all(ledger.request(i) for i in ids))
        else:
            wait_for(
                "a first response",
                lambda ids=ids: any(
                    (r := ledger.request(i)) is not None and r.status == "completed" for i in ids
                ),
            )
        os.kill(pid, signal.SIGKILL)
        new = wait_for(f"{victim} to come back", lambda v=victim, p=pid: running(home, v, p))
        assert new != pid
        wait_for(
            f"burst {prefix} to complete", lambda ids=ids: _completed(ledger, ids), timeout=180
        )
        done += ids
        assert dsr_up.poll() is None, "dsr up exited"

    # and after all that, new work still flows
    ids = _burst(home, "after")
    wait_for("the last burst to complete", lambda: _completed(ledger, ids), timeout=180)
    done += ids
    for request_id in done:
        actions = [e.action for e in ledger.timeline(request_id)]
        assert actions.count("completed") == 1, (request_id, actions)
    restarts = {n: p["restarts"] for n, p in processes(home).items()}
    assert restarts["worker-0"] >= 1 and restarts["runner-0"] >= 1 and restarts["broker"] == 1
    ledger.close()

    dsr_up.send_signal(signal.SIGTERM)
    assert dsr_up.wait(timeout=60) == 0


def test_an_edit_of_the_data_map_reaches_no_process_until_dsr_up_starts_again(
    tmp_path: Path, dsr_up: subprocess.Popen[bytes]
) -> None:
    """The data map is edited while the stack runs, into one that does not load (a
    typo), and then the runner dies of something else. Before, the runner read the
    edited file as it restarted and could not start: a crash loop, and no system was
    called until someone fixed the file. The stack now runs on the data map it started
    with: the runner comes back, the log says the edit does not load, and a burst
    completes."""
    home = tmp_path
    runner = wait_for("the runner", lambda: running(home, "runner-0"), timeout=90)
    wait_for("the worker", lambda: running(home, "worker-0"), timeout=90)
    datamap = home / "datamap.yaml"
    datamap.write_text(datamap.read_text().replace("connector: sql", "connector: sqll", 1))
    log = home / "dsr-up.log"
    wait_for("the edit to be seen", lambda: "was changed and does not load" in log.read_text())
    os.kill(runner, signal.SIGKILL)
    wait_for("the runner to come back", lambda: running(home, "runner-0", runner), timeout=90)
    ledger = Ledger(f"sqlite:///{home / 'ledger.db'}")
    ids = _burst(home, "edited")
    wait_for("the burst to complete", lambda: _completed(ledger, ids), timeout=180)
    ledger.close()
    assert processes(home)["runner-0"]["restarts"] == 1
    assert "unknown connector 'sqll'" in log.read_text()  # what the log says of the edit


def test_a_process_killed_before_it_has_joined_is_restarted(tmp_path: Path) -> None:
    """A worker and a runner each die by SIGKILL once, started but not yet in their group
    (``services/faults.py``): ``dsr up`` restarts them and goes on, instead of stopping."""
    home = tmp_path
    settings_for(home)
    points = ",".join(STARTUP_POINTS)
    with dsr_up_process(home, env={"DSR_CRASH_AT": points}) as up:
        log = home / "dsr-up.log"
        joined = re.compile(r"^Joined in [0-9.]+s\.", re.M)
        wait_for(
            "dsr up to join, or to exit",
            lambda: up.poll() is not None or joined.search(log.read_text()) is not None,
            timeout=120,
        )
        assert up.poll() is None, log.read_text()[-3000:]
        assert all(crash_marker(home, p).exists() for p in STARTUP_POINTS)
        restarts = {n: p["restarts"] for n, p in processes(home).items()}
        assert restarts["worker-0"] == 1 and restarts["runner-0"] == 1, restarts
        ledger = Ledger(f"sqlite:///{home / 'ledger.db'}")
        ids = _burst(home, "started")
        wait_for("the burst to complete", lambda: _completed(ledger, ids), timeout=180)
        ledger.close()
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0


def test_a_second_dsr_up_on_the_same_home_is_refused_and_changes_nothing(
    tmp_path: Path, dsr_up: subprocess.Popen[bytes]
) -> None:
    """A second ``dsr up`` (or ``dsr demo``) on a home that one runs on would start a
    broker of its own, re-drive every open request, and overwrite the first's
    addresses; on stopping, it removed ``broker.addr``. It is refused, before it starts
    anything, and the first stack goes on answering."""
    home = tmp_path
    for name in ("broker", "worker-0", "runner-0"):
        wait_for(f"{name} to run", lambda n=name: running(home, n), timeout=90)
    files = ("broker.addr", "run/console.url")
    before = {f: (home / f).read_text() for f in files}
    pids = {n: p["pid"] for n, p in processes(home).items()}

    second = subprocess.run(
        [sys.executable, "-m", "services.cli", "up"],
        env=clean_env(DSR_HOME=str(home), DSR_DASHBOARD_PORT="0"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert second.returncode == 1, second.stdout + second.stderr
    assert f"is in use by another `dsr up` or `dsr demo` (pid {dsr_up.pid})" in " ".join(
        second.stderr.split()
    )
    assert {f: (home / f).read_text() for f in files} == before
    assert {n: p["pid"] for n, p in processes(home).items()} == pids
    assert all(p["running"] for p in processes(home).values())
    ledger = Ledger(f"sqlite:///{home / 'ledger.db'}")
    ids = _burst(home, "after")
    wait_for("the burst to complete", lambda: _completed(ledger, ids), timeout=180)
    ledger.close()
    assert dsr_up.poll() is None, "dsr up exited"


def test_a_broker_that_stays_frozen_is_killed_and_restarted(tmp_path: Path) -> None:
    """The embedded broker alive but stuck (SIGSTOP): its port still takes connections,
    and every client waits on it; none can end it. ``dsr up`` asks it whether it
    answers, kills it once it has not for ``DSR_RESTART_FROZEN_AFTER_S``, and restarts
    it as when it dies: requests flow again."""
    home = tmp_path
    settings_for(home)
    with dsr_up_process(home, env={"DSR_RESTART_FROZEN_AFTER_S": "8"}) as up:
        for name in ("broker", "worker-0", "runner-0"):
            wait_for(f"{name} to run", lambda n=name: running(home, n), timeout=90)
        frozen = running(home, "broker")
        assert frozen is not None
        os.kill(frozen, signal.SIGSTOP)
        try:
            wait_for("a new broker", lambda: running(home, "broker", not_pid=frozen), 60)
            assert "broker is frozen" in (home / "dsr-up.log").read_text()
            with pytest.raises(ProcessLookupError):  # killed, not thawed
                os.kill(frozen, 0)
        finally:  # a broker left frozen would outlive the test
            with contextlib.suppress(ProcessLookupError):
                os.kill(frozen, signal.SIGKILL)
        for name in ("worker-0", "runner-0"):
            wait_for(f"{name} to run again", lambda n=name: running(home, n), timeout=90)
        ledger = Ledger(f"sqlite:///{home / 'ledger.db'}")
        ids = _burst(home, "thawed")
        wait_for("the burst to complete", lambda: _completed(ledger, ids), timeout=180)
        ledger.close()
        assert processes(home)["broker"]["restarts"] == 1
        assert up.poll() is None, "dsr up exited"
