"""``dsr demo --serve`` prints the environment client commands need, and with only that,
``dsr submit`` and ``dsr status`` reach the running demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from services.demo.scenario import TARO, event
from tests.integration.fixtures import clean_env, dsr_cli, wait_for

pytestmark = pytest.mark.integration


def test_client_commands_reach_a_served_demo_with_the_printed_environment(
    tmp_path: Path,
) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "demo", "--serve"],
        env=clean_env(DSR_HOME=str(tmp_path / "home"), DSR_DASHBOARD_PORT="0"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert demo.stdout is not None
        exports: dict[str, str] = {}
        for line in demo.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                exports[name] = value
            if line.startswith("Ctrl-C stops the pipeline"):
                break
        assert "DSR_HOME" in exports, "the served demo printed no environment"

        env = clean_env(**exports)
        request = tmp_path / "request.jsonl"
        request.write_text(json.dumps(event("client-1", "disclosure", TARO)) + "\n")

        dsr = dsr_cli(env, tmp_path)
        sent = dsr("submit", str(request))
        assert sent.returncode == 0, sent.stdout + sent.stderr
        wait_for(
            "the request to complete",
            lambda: (
                json.loads(dsr("status", "client-1", "--json").stdout or "{}").get("status")
                == "completed"
            ),
        )
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
