"""The signing keyring changes while the stack runs: a key added counts, and a key taken
out is refused, from the next event on, with no restart; a keyring file that does not
load holds signed events until it does, and admits nothing meanwhile."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from services.client import Submitter, Watcher
from services.demo.scenario import TARO, event
from services.ledger import Ledger
from services.signing import Signer
from streams import topics
from tests.integration.fixtures import joined_stack, settings_for, wait_for

pytestmark = pytest.mark.integration


def _write(path: Path, text: str) -> None:
    """As an operator's tool would: a new file, owner-readable only, moved into place."""
    tmp = path.with_suffix(".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def test_a_key_added_or_taken_out_counts_from_the_next_event_without_a_restart(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    keyring = settings.signing_keys_path
    late = {"secret": secrets.token_hex(32), "owner": "CRM export job", "requests": ["*"]}
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        worker = stack.pid("worker-0")
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES, topics.REJECTED])
        ledger = Ledger(settings.database_url)
        first = json.loads(keyring.read_text())

        def send(request_id: str, key_id: str, secret: str) -> None:
            submitter = Submitter(stack.bootstrap, Signer(key_id, bytes.fromhex(secret)))
            submitter.submit_all([json.dumps(event(request_id, "disclosure", TARO)).encode()])
            submitter.close()

        def outcome(request_id: str) -> tuple[str, dict[str, Any]]:
            seen = watcher.collect(
                lambda s: any(b.get("request_id") == request_id for _, b in s), 90
            )
            [found] = [(t, b) for t, b in seen if b.get("request_id") == request_id]
            return found

        # a key the running worker has never seen
        _write(keyring, json.dumps({"keys": {**first["keys"], "late": late}}))
        send("by-a-key-added", "late", late["secret"])
        topic, body = outcome("by-a-key-added")
        assert (topic, body["status"]) == (topics.RESPONSES, "completed")

        # the same key, taken out: refused at once
        _write(keyring, json.dumps(first))
        send("by-a-key-taken-out", "late", late["secret"])
        topic, body = outcome("by-a-key-taken-out")
        assert (topic, body["reason_code"]) == (topics.REJECTED, "unknown_key")
        assert ledger.request("by-a-key-taken-out") is None

        # a keyring that does not load (an edit half written): nothing is admitted,
        # nothing refused; the event waits for a keyring that loads
        keyring.write_text('{"keys": {"ops": ')
        ops = first["keys"]["ops"]["secret"]
        send("while-unreadable", "ops", ops)
        worker_log = tmp_path / "logs" / "worker-0.log"
        wait_for("intake to wait", lambda: "KeyringError" in worker_log.read_text())
        assert ledger.request("while-unreadable") is None
        _write(keyring, json.dumps(first))
        topic, body = outcome("while-unreadable")
        assert (topic, body["status"]) == (topics.RESPONSES, "completed")

        assert stack.check_alive() == [] and stack.pid("worker-0") == worker
        watcher.close()
        ledger.close()
