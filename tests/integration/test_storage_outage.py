"""The package store away (S3 stopped, or hanging, while a request times out; a local
disk full): the worker waits for the store and goes on, without crashing, stalling or
parking the request, and the request is answered once the store is back."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from services import heartbeat
from services.client import Submitter, Watcher
from services.demo.scenario import HANAKO, TARO, event
from services.ledger import Ledger
from services.settings import Settings
from services.stack import Stack
from streams import topics
from tests.fixtures.moto_server import CREDENTIALS, s3_client, start_moto, stop_moto
from tests.integration.fixtures import (
    SILENT_ARCHIVE,
    answered,
    dsr_up_process,
    joined_stack,
    processes,
    running,
    settings_for,
    wait_for,
    with_crm,
)

pytestmark = pytest.mark.integration

DATAMAP = with_crm(SILENT_ARCHIVE, timeout_s=4)
BUCKET = "packages"
#: Asked of the archive too (it has a phone number), which never answers.
PROBE = {**HANAKO, "phone": "080-3333-4444"}


@dataclass
class _Run:
    stack: Stack
    ledger: Ledger
    watcher: Watcher
    submitter: Submitter

    @property
    def worker(self) -> int:
        return self.stack.pid("worker-0")

    def audited(self, request_id: str, action: str) -> bool:
        return any(e.action == action for e in self.ledger.timeline(request_id))

    def submit(self, request_id: str, principal: dict[str, str] = PROBE) -> None:
        self.submitter.submit_all([json.dumps(event(request_id, "disclosure", principal)).encode()])


@contextmanager
def _on_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> Iterator[_Run]:
    """The stack, its packages in the bucket at ``url``, with a silent archive."""
    monkeypatch.setenv("DSR_TASK_ATTEMPTS", "1000")  # the archive never answers
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", CREDENTIALS["region_name"])
    s3_client(url).create_bucket(Bucket=BUCKET)
    settings = settings_for(tmp_path, DATAMAP).model_copy(
        update={"storage_url_override": f"s3://{BUCKET}/dsr", "s3_endpoint_url": url}
    )
    ledger = Ledger(settings.database_url)
    try:
        with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
            watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
            run = _Run(stack, ledger, watcher, stack.submitter())
            yield run
            run.submitter.close()
            watcher.close()
    finally:
        ledger.close()


def test_a_time_out_waits_for_the_package_store_and_the_worker_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "moto.log"
    moto, url = start_moto(log)
    try:
        with _on_s3(tmp_path, monkeypatch, url) as run:
            stack, worker, audited = run.stack, run.worker, run.audited
            run.submit("before", HANAKO)
            seen = run.watcher.collect(lambda s: answered(s) == {"before"}, timeout_s=90)
            # the store works: the first package is in the bucket
            assert _keys(url, "before")

            run.submit("outage")
            wait_for("the fan-out", lambda: audited("outage", "fanned_out"))
            stop_moto(moto)  # the store goes away before the request times out
            wait_for("the time-out", lambda: audited("outage", "tasks_timed_out"))
            # the response's package cannot be stored: the worker waits, and lives on
            worker_log = tmp_path / "logs" / "worker-0.log"
            wait_for(
                "the worker to find the store away",
                lambda: stack.check_alive() or "StorageUnavailable" in worker_log.read_text(),
            )
            assert stack.check_alive() == [] and stack.pid("worker-0") == worker
            # back, empty: its bucket there before the worker can reach it (a store that
            # answered without it would fail the package for good, and the request park)
            moto, _ = start_moto(log, port=urlsplit(url).port, buckets=[BUCKET])
            seen += run.watcher.collect(lambda s: "outage" in answered(s), timeout_s=90)

            assert stack.check_alive() == [] and stack.pid("worker-0") == worker
            assert _keys(url, "outage")  # its package, stored once the store was back
            _timed_out_once(run.ledger, seen, "outage")
    finally:
        stop_moto(moto)


def test_a_hanging_store_does_not_stall_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store accepts connections but never answers (its process frozen): the worker
    goes on admitting requests and beating while a package waits for it."""
    moto, url = start_moto(tmp_path / "moto.log")
    try:
        with _on_s3(tmp_path, monkeypatch, url) as run:
            stack, worker, audited = run.stack, run.worker, run.audited
            run.submit("hung")
            wait_for("the fan-out", lambda: audited("hung", "fanned_out"))
            os.kill(moto.pid, signal.SIGSTOP)  # the store hangs before the request times out
            wait_for("the time-out", lambda: audited("hung", "tasks_timed_out"))
            # its package cannot be stored; meanwhile another request comes in
            run.submit("meanwhile")
            oldest: list[float] = []

            def admitted() -> bool:
                beat = heartbeat.read(tmp_path).get("worker-0")
                oldest.append(beat.age() if beat else float("inf"))
                return audited("meanwhile", "received")

            wait_for("the next request's admission", admitted, timeout=60)
            assert max(oldest) < heartbeat.FROZEN_AFTER_S  # it never looked frozen
            os.kill(moto.pid, signal.SIGCONT)
            seen = run.watcher.collect(lambda s: {"hung", "meanwhile"} <= answered(s), timeout_s=90)

            assert stack.check_alive() == [] and stack.pid("worker-0") == worker
            assert _keys(url, "hung") and _keys(url, "meanwhile")
            _timed_out_once(run.ledger, seen, "hung")
    finally:
        os.kill(moto.pid, signal.SIGCONT)
        stop_moto(moto)


def _timed_out_once(ledger: Ledger, seen: list[tuple[str, dict[str, Any]]], rid: str) -> None:
    """``rid`` answered once: the crm's records, and the silent archive timed out."""
    [response] = [b for _, b in seen if b["request_id"] == rid]
    systems = {s["system"]: s["status"] for s in response["systems"]}
    assert systems == {"crm": "ok", "archive": "timed_out"}
    assert [e.action for e in ledger.timeline(rid)].count("completed") == 1


def _keys(url: str, request_id: str) -> list[str]:
    listed = s3_client(url).list_objects_v2(Bucket=BUCKET, Prefix="dsr/")
    return [o["Key"] for o in listed.get("Contents", []) if request_id in o["Key"]]


@contextmanager
def _small_disk(path: Path, size_kib: int = 512) -> Iterator[Path]:
    """A file system of its own at ``path``, ``size_kib`` in size: a tmpfs (root only)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root and mount(8)")
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def _fill(disk: Path) -> Path:
    """A file that takes every free block of ``disk``."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):  # ENOSPC
        while True:
            out.write(b"\0" * 4096)
    return filler


def test_a_full_package_disk_holds_the_response_until_there_is_room(tmp_path: Path) -> None:
    """The local package directory's disk fills up: a response's package cannot be
    written. That is the host's fault, not the request's: the batch waits, as for a
    store away, rather than parking the request; once there is room it is answered,
    once, with its package."""
    with _small_disk(tmp_path / "packages") as disk:
        settings = settings_for(tmp_path).model_copy(update={"storage_url_override": disk.as_uri()})
        ledger = Ledger(settings.database_url)
        with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
            worker = stack.pid("worker-0")
            watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
            submitter = stack.submitter()
            filler = _fill(disk)
            submitter.submit_all([json.dumps(event("full", "disclosure", TARO)).encode()])
            worker_log = tmp_path / "logs" / "worker-0.log"

            def waits_or_parked() -> bool:
                request = ledger.request("full")
                parked = request is not None and request.status == "parked"
                return parked or "infrastructure away" in worker_log.read_text()

            wait_for("the package to wait for room", waits_or_parked)
            request = ledger.request("full")
            assert request is not None and request.status != "parked", request
            filler.unlink()
            seen = watcher.collect(lambda s: "full" in answered(s), timeout_s=90)

            [response] = [b for _, b in seen if b["request_id"] == "full"]
            assert response["status"] == "completed"
            assert list(disk.rglob("*full*")), "no package on disk"
            actions = [e.action for e in ledger.timeline("full")]
            assert actions.count("completed") == 1 and "parked" not in actions, actions
            assert stack.check_alive() == [] and stack.pid("worker-0") == worker
            submitter.close()
            watcher.close()
        ledger.close()


def test_a_full_disk_under_the_home_stops_no_process(tmp_path: Path) -> None:
    """``DSR_HOME``'s disk fills up under ``dsr up``: its ledger, logs, heartbeats and
    reports are all there. Before, the supervisor died writing its report within
    seconds and took every process with it. Now nothing stops: the worker keeps beating
    (over its heartbeat file, in place), a request submitted meanwhile is answered once
    there is room, and nothing is restarted."""
    with _small_disk(tmp_path / "home", 65536) as home:
        settings_for(home)
        with dsr_up_process(home) as up:
            worker = wait_for("the worker", lambda: running(home, "worker-0"))
            runner = wait_for("the runner", lambda: running(home, "runner-0"))
            bootstrap = (home / "broker.addr").read_text().strip()
            watcher = Watcher(bootstrap, [topics.RESPONSES])

            def beat() -> float:
                found = heartbeat.read(home).get("worker-0")
                return found.at if found is not None else 0.0

            wait_for("a first beat", beat)
            filler = _fill(home)
            full = beat()
            wait_for("a beat on the full disk", lambda: beat() > full)
            submitter = Submitter.from_settings(Settings(home=home), bootstrap)
            submitter.submit_all([json.dumps(event("full-home", "disclosure", TARO)).encode()])
            submitter.close()
            later = beat()
            wait_for("another beat, the request in hand", lambda: beat() > later)
            assert up.poll() is None, "dsr up exited"
            filler.unlink()
            seen = watcher.collect(lambda s: "full-home" in answered(s), timeout_s=120)
            watcher.close()
            assert [b["status"] for _, b in seen if b["request_id"] == "full-home"] == ["completed"]
            procs = processes(home)
            assert {n: p["restarts"] for n, p in procs.items()} == dict.fromkeys(procs, 0)
            assert (procs["worker-0"]["pid"], procs["runner-0"]["pid"]) == (worker, runner)
