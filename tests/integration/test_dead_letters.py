"""Dead letters, end to end: a task that ran out of attempts is listed, redriven once the
system is fixed, and its request completes again with the next response revision."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.client import Watcher
from services.demo.scenario import TARO, event
from services.ledger import Ledger
from streams import topics
from tests.integration.fixtures import joined_stack, settings_for, wait_for, with_crm

pytestmark = pytest.mark.integration

# The archive's database is not there yet: every call fails to connect (a transient error).
DATAMAP = with_crm(
    """
  archive:
    connector: sql
    identifiers: [email]
    config:
      url: "sqlite:///file:${DSR_HOME}/archive.db?mode=ro&uri=true"
      tables:
        - name: customers
          key: {column: email, identifier: email}
""",
    timeout_s=60,
)


def test_a_redriven_task_completes_its_request_again_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSR_TASK_ATTEMPTS", "2")
    settings = settings_for(tmp_path, DATAMAP)
    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    monkeypatch.setenv("DSR_DATAMAP", str(settings.datamap_path))
    cli = CliRunner()

    def dsr(*args: str) -> str:
        result = cli.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
        submitter = stack.submitter()
        submitter.submit_all([json.dumps(event("dlq-1", "disclosure", TARO)).encode()])
        first = [b for _, b in watcher.collect(lambda s: len(s) >= 1, 60)]
        assert [(b["status"], b["revision"]) for b in first] == [("partially_completed", 1)]

        # the worker records the letter as it arrives on the topic
        wait_for("the dead letter", lambda: json.loads(dsr("dlq", "list", "--json")), 90)
        [letter] = json.loads(dsr("dlq", "list", "--system", "archive", "--json"))
        assert letter["request_id"] == "dlq-1" and letter["attempts"] == 2
        assert letter["error_code"] == "retries_exhausted"
        assert json.loads(dsr("dlq", "list", "--system", "crm", "--json")) == []
        assert "1 of 1 dead letter(s) would be redriven" in dsr("dlq", "redrive", "--dry-run")
        assert Ledger(settings.database_url).request("dlq-1").status == "partially_completed"

        shutil.copyfile(tmp_path / "crm.db", tmp_path / "archive.db")  # the system is back
        assert "1 of 1 dead letter(s) redriven" in dsr("dlq", "redrive", "--system", "archive")
        second = [b for _, b in watcher.collect(lambda s: len(s) >= 1, 60)]
        again = dsr("dlq", "redrive", "--request", "dlq-1")
        submitter.close()
        watcher.close()
    assert [(b["status"], b["revision"]) for b in second] == [("completed", 1 + 1)]
    assert {s["system"]: s["status"] for s in second[0]["systems"]} == {
        "crm": "ok",
        "archive": "ok",
    }
    assert "0 of 1 dead letter(s) redriven" in again and "already redriven" in again
    ledger = Ledger(settings.database_url)
    actions = [e.action for e in ledger.timeline("dlq-1")]
    assert actions.count("redriven") == 1 and actions.count("completed") == 2
    ledger.close()


# The archive keeps a copy of the CRM; until it is restored, every call fails.
ERASURE_DATAMAP = with_crm(
    """
          erasure: {strategy: delete}
  archive:
    connector: sql
    identifiers: [email]
    config:
      url: "sqlite:///file:${DSR_HOME}/archive.db?mode=rw&uri=true"
      tables:
        - name: customers
          key: {column: email, identifier: email}
          erasure: {columns: {email: hash, name: mask, phone: null, address: null}}
""",
    timeout_s=60,
)


class DsrUp:
    """``dsr up`` as an operator runs it: a process of its own, stopped with SIGTERM."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for ready in (self.home / "run").glob("*.ready"):
            ready.unlink()
        log = (self.home / "dsr-up.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        ready = [self.home / "run" / f"{n}.ready" for n in ("worker-0", "runner-0")]
        wait_for("dsr up to join", lambda: all(p.exists() for p in ready), 90, alive=self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        self.process = None


def test_dead_letters_survive_a_restart_of_dsr_up_and_redrive_to_completion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(tmp_path, ERASURE_DATAMAP)
    shutil.copyfile(tmp_path / "crm.db", tmp_path / "archive-backup.db")
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parents[2]),
        "DSR_HOME": str(tmp_path),
        "DSR_DATAMAP": str(settings.datamap_path),
        "DSR_TASK_ATTEMPTS": "2",
        "DSR_DASHBOARD_PORT": "0",
    }
    env.pop("DSR_KAFKA_BOOTSTRAP", None)  # the embedded, in-memory broker
    for name in ("DSR_HOME", "DSR_DATAMAP", "DSR_TASK_ATTEMPTS"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.delenv("DSR_KAFKA_BOOTSTRAP", raising=False)
    cli = CliRunner()

    def dsr(*args: str) -> str:
        result = cli.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    def letters() -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], json.loads(dsr("dlq", "list", "--json")))

    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps(event("dlq-2", "erasure", TARO, grounds=["no_longer_needed"])))
    ledger = Ledger(settings.database_url)
    up = DsrUp(tmp_path, env)
    try:
        up.start()
        dsr("submit", str(requests))
        wait_for("the dead letter in the ledger", letters, 90, alive=up.process)
        wait_for(
            "the request to complete without the archive",
            lambda: ledger.request("dlq-2").status == "partially_completed",  # type: ignore[union-attr]
            90,
        )
        up.stop()  # the in-memory broker goes with it, and the dead-letter topic too
        assert not (tmp_path / "broker.addr").exists()

        shutil.copyfile(tmp_path / "archive-backup.db", tmp_path / "archive.db")  # fixed
        up.start()
        [letter] = letters()
        assert (letter["source"], letter["request_id"]) == ("archive", "dlq-2")
        assert (letter["error_code"], letter["attempts"], letter["redriven_at"]) == (
            "retries_exhausted",
            2,
            None,
        )
        assert "1 of 1 dead letter(s) redriven" in dsr("dlq", "redrive")
        wait_for(
            "the redriven request to complete",
            lambda: ledger.request("dlq-2").status == "completed",  # type: ignore[union-attr]
            90,
            alive=up.process,
        )
        [after] = letters()
        again = dsr("dlq", "redrive")
    finally:
        up.stop()
    assert after["redriven_at"] is not None
    assert "0 of 1 dead letter(s) redriven" in again and "already redriven" in again
    assert ledger.request("dlq-2").revision == 2  # type: ignore[union-attr]
    ledger.close()
    # The effect, in the archive's own data: Taro pseudonymised, the others untouched.
    with sqlite3.connect(tmp_path / "archive.db") as conn:
        rows = dict(conn.execute("SELECT customer_id, email FROM customers").fetchall())
        taro = conn.execute(
            "SELECT name, phone, address FROM customers WHERE customer_id = 'C-1001'"
        ).fetchone()
    assert taro == ("***", None, None)
    assert len(rows["C-1001"]) == 64 and "taro" not in rows["C-1001"]
    assert rows["C-1001"] != hashlib.sha256(b"taro@example.jp").hexdigest()
    assert rows["C-1002"] == "hanako@example.jp" and rows["C-1003"] == "jiro@example.jp"
    with sqlite3.connect(tmp_path / "crm.db") as conn:
        emails = [e for (e,) in conn.execute("SELECT email FROM customers")]
    assert "taro@example.jp" not in emails and "hanako@example.jp" in emails
