"""Dead letters, end to end: a task that ran out of attempts is listed, redriven once the
system is fixed, and its request completes again with the next response revision."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.client import Watcher
from services.demo.scenario import TARO, event
from services.ledger import Ledger
from services.stack import Stack
from streams import topics
from tests.integration.fixtures import settings_for

pytestmark = pytest.mark.integration

# The archive's database is not there yet: every call fails to connect (a transient error).
DATAMAP = """
request_timeout_seconds: 60
systems:
  crm:
    connector: sql
    identifiers: [email]
    config:
      url: "sqlite:///${DSR_HOME}/crm.db"
      tables:
        - name: customers
          key: {column: email, identifier: email}
  archive:
    connector: sql
    identifiers: [email]
    config:
      url: "sqlite:///file:${DSR_HOME}/archive.db?mode=ro&uri=true"
      tables:
        - name: customers
          key: {column: email, identifier: email}
"""


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

    with Stack(settings, log_dir=tmp_path / "logs") as stack:
        stack.wait_joined()
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
        submitter = stack.submitter()
        submitter.submit_all([json.dumps(event("dlq-1", "disclosure", TARO)).encode()])
        first = [b for _, b in watcher.collect(lambda s: len(s) >= 1, 60)]
        assert [(b["status"], b["revision"]) for b in first] == [("partially_completed", 1)]

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
