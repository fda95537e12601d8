"""A stuck process is told from a live one: a runner frozen with SIGSTOP stops beating, so
`dsr health` (a container's probe), `dsr ps` and `dsr top` say so; it beats again once thawed.
A process that stays frozen is killed and restarted by `dsr up`. And `dsr status` tells a
task a runner holds from one still queued."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services import heartbeat
from services.client import Submitter, Watcher
from services.demo.scenario import TARO, event
from services.settings import Settings
from streams import topics
from tests.integration.fixtures import (
    clean_env,
    dsr_cli,
    dsr_up_process,
    json_api,
    processes,
    running,
    settings_for,
    wait_for,
    with_crm,
)

pytestmark = pytest.mark.integration


def dsr(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return dsr_cli(clean_env(DSR_HOME=str(home)))(*args)


def test_a_frozen_runner_stops_beating_and_is_reported(tmp_path: Path) -> None:
    settings_for(tmp_path)
    # shown frozen, not restarted (below): ``dsr up`` is told not to
    env = {"DSR_HEARTBEAT_INTERVAL_S": "0.5", "DSR_RESTART_FROZEN_AFTER_S": "0"}
    with dsr_up_process(tmp_path, env=env):
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


def test_a_worker_that_stays_frozen_is_killed_and_restarted(tmp_path: Path) -> None:
    """A worker alive but stuck (SIGSTOP: nothing of it runs, not even its loop) holds its
    partitions and answers nothing. ``dsr up`` kills it once its last beat is
    ``DSR_RESTART_FROZEN_AFTER_S`` old and starts another, which answers the request
    submitted while the first was frozen."""
    settings = settings_for(tmp_path)
    log = tmp_path / "dsr-up.log"
    with dsr_up_process(tmp_path, env={"DSR_RESTART_FROZEN_AFTER_S": "8"}):
        frozen = wait_for("the worker", lambda: running(tmp_path, "worker-0"))
        wait_for("the runner", lambda: running(tmp_path, "runner-0"))
        wait_for("its beat", lambda: "worker-0" in heartbeat.read(tmp_path))
        bootstrap = (tmp_path / "broker.addr").read_text().strip()
        watcher = Watcher(bootstrap, [topics.RESPONSES])
        os.kill(frozen, signal.SIGSTOP)
        submitter = Submitter.from_settings(settings, bootstrap)
        submitter.submit_all([json.dumps(event("frozen", "disclosure", TARO)).encode()])
        submitter.close()
        fresh = wait_for("a new worker", lambda: running(tmp_path, "worker-0", not_pid=frozen))
        assert "worker-0 is frozen" in log.read_text()
        with pytest.raises(ProcessLookupError):  # killed, not thawed
            os.kill(frozen, 0)
        seen = watcher.collect(lambda s: any(b["request_id"] == "frozen" for _, b in s), 150)
        watcher.close()
        assert [b["status"] for _, b in seen if b["request_id"] == "frozen"] == ["completed"]
        wait_for("the new worker's beat", lambda: heartbeat.read(tmp_path)["worker-0"].pid == fresh)


def test_a_worker_stuck_before_its_first_beat_is_killed_and_restarted(tmp_path: Path) -> None:
    """A worker stuck while it starts (stopped with SIGSTOP before its first beat: as a
    read or a lookup that never returns) has no beat to go stale. ``dsr up`` kills it
    once it has run ``DSR_RESTART_UNSTARTED_AFTER_S`` without one, and the next worker
    answers the request submitted meanwhile. Before, only a process that had beaten
    once could be found frozen: this one was waited on for ever."""
    settings = settings_for(tmp_path)
    log = tmp_path / "dsr-up.log"
    env = {"DSR_RESTART_FROZEN_AFTER_S": "60", "DSR_RESTART_UNSTARTED_AFTER_S": "10"}
    with dsr_up_process(tmp_path, env=env):
        first = wait_for("the worker", lambda: running(tmp_path, "worker-0"))
        wait_for("the runner", lambda: running(tmp_path, "runner-0"))
        bootstrap = (tmp_path / "broker.addr").read_text().strip()
        watcher = Watcher(bootstrap, [topics.RESPONSES])
        os.kill(first, signal.SIGKILL)

        def spawned() -> int | None:
            p = processes(tmp_path).get("worker-0") or {}
            return p["pid"] if p.get("running") and p.get("pid") not in (None, first) else None

        stuck = wait_for("the worker started again", spawned, 60)
        os.kill(stuck, signal.SIGSTOP)
        try:
            beat = heartbeat.read(tmp_path).get("worker-0")
            assert beat is None or beat.pid != stuck, "it beat before it was stopped"
            submitter = Submitter.from_settings(settings, bootstrap)
            submitter.submit_all([json.dumps(event("unstarted", "disclosure", TARO)).encode()])
            submitter.close()
            wait_for("a worker after it", lambda: running(tmp_path, "worker-0", not_pid=stuck), 90)
            assert "worker-0 is frozen: started, and not one heartbeat" in log.read_text()
            with pytest.raises(ProcessLookupError):  # killed, not thawed
                os.kill(stuck, 0)
        finally:  # a worker left stopped would outlive the test
            with contextlib.suppress(ProcessLookupError):
                os.kill(stuck, signal.SIGKILL)
        seen = watcher.collect(lambda s: any(b["request_id"] == "unstarted" for _, b in s), 150)
        watcher.close()
        assert [b["status"] for _, b in seen if b["request_id"] == "unstarted"] == ["completed"]


def test_health_fails_where_nothing_beats(tmp_path: Path) -> None:
    done = dsr(tmp_path, "health")
    assert done.returncode == 1 and "no heartbeat" in done.stderr
    assert dsr(tmp_path, "health", "worker-0").returncode == 1


DATAMAP = with_crm(
    """
  gated:
    connector: http
    identifiers: [email]
    config:
      base_url: "GATED_URL"
      timeout_s: 120
      endpoints:
        disclose: {path: "/users/{email}", records_path: items}
""",
    timeout_s=300,
)


@pytest.fixture
def gate() -> Iterator[tuple[str, threading.Event]]:
    """A system whose calls for people wait until the test opens its gate (its start-up
    check, on the base URL, is answered at once)."""
    opened = threading.Event()

    def gated(path: str) -> None:
        if path.startswith("/users/"):
            opened.wait(120)

    with json_api({"items": []}, gated) as url:
        yield url, opened
        opened.set()


def _status(home: Path, request_id: str) -> dict[str, Any] | None:
    done = dsr(home, "status", request_id, "--json")
    return json.loads(done.stdout) if done.returncode == 0 else None


def _task_states(home: Path, request_id: str) -> dict[str, str]:
    report = _status(home, request_id) or {"tasks": []}
    return {t["system"]: t.get("state") or t["status"] for t in report["tasks"]}


def test_dsr_status_tells_a_task_in_a_runners_hands_from_a_queued_one(
    tmp_path: Path, gate: tuple[str, threading.Event]
) -> None:
    """The first request's call to the gated system hangs; the second request's task for
    that system waits behind it. `dsr status` says which runner holds the first, and
    that the second is queued, not running; both finish once the gate opens."""
    url, opened = gate
    settings_for(tmp_path, DATAMAP.replace("GATED_URL", url))
    with dsr_up_process(tmp_path):
        wait_for("the runner", lambda: running(tmp_path, "runner-0"))
        wait_for("the worker", lambda: running(tmp_path, "worker-0"))
        bootstrap = (tmp_path / "broker.addr").read_text().strip()
        submitter = Submitter.from_settings(Settings(home=tmp_path), bootstrap)
        try:
            submitter.submit(json.dumps(event("held-1", "disclosure", TARO)).encode())
            wait_for(
                "the gated call to be in hand",
                lambda: _task_states(tmp_path, "held-1") == {"crm": "ok", "gated": "running"},
            )
            submitter.submit(json.dumps(event("behind-1", "disclosure", TARO)).encode())
            wait_for(
                "the second request's crm part",
                lambda: _task_states(tmp_path, "behind-1").get("crm") == "ok",
            )
        finally:
            submitter.close()
        assert _task_states(tmp_path, "behind-1")["gated"] == "queued"
        report = _status(tmp_path, "held-1")
        assert report is not None
        [gated] = [s for s in report["stages"] if s["stage"] == "system:gated"]
        assert gated["status"] == "running" and gated["runner"] == "runner-0"
        assert gated["attempt"] == 1
        shown = dsr(tmp_path, "status", "behind-1").stdout
        assert "queued" in shown

        opened.set()
        for request_id in ("held-1", "behind-1"):
            wait_for(
                f"{request_id} to complete",
                lambda r=request_id: (_status(tmp_path, r) or {}).get("status") == "completed",
            )
