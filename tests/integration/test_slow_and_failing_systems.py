"""On-call view of a slow system and a failing one, from a real run's /metrics."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.broker import free_port
from services.client import Submitter, Watcher
from services.demo.scenario import HANAKO, JIRO, TARO, event
from services.stack import Stack
from streams import topics
from tests.integration.fixtures import settings_for
from tests.integration.test_metrics import Series, scrape, scrape_until, value

pytestmark = pytest.mark.integration

SLOW_S = 0.4


class SlowCRM(BaseHTTPRequestHandler):
    """A SaaS CRM that answers correctly, but slowly."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        time.sleep(SLOW_S)
        body = json.dumps({"items": [{"plan": "gold"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowCRM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


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
  billing_saas:
    connector: http
    identifiers: [email]
    config:
      base_url: "SLOW_URL"
      timeout_s: 5
      endpoints:
        disclose: {path: "/users/{email}", records_path: items}
  legacy_erp:
    connector: http
    identifiers: [email]
    config:
      base_url: "http://127.0.0.1:CLOSED_PORT"
      timeout_s: 1
      endpoints:
        disclose: {path: "/users/{email}"}
"""


def mean_call_seconds(runner: Series, system: str) -> float:
    total = value(runner, "dsr_connector_call_seconds_sum", system=system, kind="disclosure")
    count = value(runner, "dsr_connector_call_seconds_count", system=system, kind="disclosure")
    return total / count


def test_the_slow_system_is_named_and_the_failing_one_counted(
    tmp_path: Path, slow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSR_TASK_ATTEMPTS", "1")
    datamap = DATAMAP.replace("SLOW_URL", slow_server).replace("CLOSED_PORT", str(free_port()))
    subjects = [TARO, HANAKO, JIRO]
    with Stack(settings_for(tmp_path, datamap), log_dir=tmp_path / "logs") as stack:
        stack.wait_joined()
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
        submitter = Submitter(stack.bootstrap)
        submitter.submit_all(
            [json.dumps(event(f"sf-{i}", "disclosure", s)).encode() for i, s in enumerate(subjects)]
        )
        responses = [b for _, b in watcher.collect(lambda s: len(s) >= 3, 90)]
        submitter.close()
        watcher.close()
        runner = scrape(stack.metrics_urls["runner-0"])
        worker = scrape_until(
            stack.metrics_urls["worker-0"],
            lambda s: sum(v for (n, _), v in s.items() if n == "dsr_requests_completed_total")
            >= 3,
        )

    assert {r["status"] for r in responses} == {"partially_completed"}
    # the slow system is the slowest by name
    means = {s: mean_call_seconds(runner, s) for s in ("crm", "billing_saas", "legacy_erp")}
    assert max(means, key=means.__getitem__) == "billing_saas", means
    assert means["billing_saas"] >= SLOW_S
    # the failing system's requests are counted as failed, per system
    assert value(runner, "dsr_connector_outcomes_total", system="legacy_erp", outcome="failed") == 3
    assert value(runner, "dsr_connector_outcomes_total", system="billing_saas", outcome="ok") == 3
    partial = {"kind": "disclosure", "regulation": "appi", "status": "partially_completed"}
    assert value(worker, "dsr_requests_completed_total", **partial) == 3
