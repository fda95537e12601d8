"""A real Prometheus scrapes `dsr up` with the project's own scrape config and rules:
every Grafana panel's queries return data, every rule evaluates without error, and every
metric the rules and the dashboard name is one the processes serve."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.broker import free_port
from services.client import Submitter
from services.demo.scenario import HANAKO, JIRO, TARO, event
from services.settings import Settings
from tests.integration.fixtures import dsr_up_process, running, settings_for, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus"),
]

INFRA = Path(__file__).parents[2] / "infra"
GRAFANA = json.loads((INFRA / "grafana" / "dsr-pipeline.json").read_text())
JOBS = {"dsr-worker": "worker-0", "dsr-runner": "runner-0", "dsr-exporter": "exporter"}
REQUESTS = [
    event("prom-disclosure", "disclosure", TARO),
    event("prom-suspension", "suspension", HANAKO, grounds=["used_beyond_purpose"]),
    event("prom-erasure", "erasure", JIRO, grounds=["no_longer_needed"]),
]
MALFORMED = b'{"schema_version": "1.0", "request_id": "prom-malformed", "kind": "forget_me"}'


def _panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, Grafana's variables filled in."""
    return [
        (panel["title"], target["expr"].replace("$__rate_interval", "1m"))
        for panel in GRAFANA["panels"]
        for target in panel.get("targets", [])
    ]


def _names(expr: str) -> set[str]:
    """The pipeline's metric names a query reads (histogram and counter suffixes kept)."""
    return set(re.findall(r"\b(dsr_[a-z_]+)", expr))


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as res:
            body = json.loads(res.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v1/query", query=expr)["result"]
        return result


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[Path, Prometheus]]:
    """`dsr up` on the demo's systems, and Prometheus scraping its three jobs every second."""
    home = tmp_path / "home"
    home.mkdir()
    settings_for(home)
    with dsr_up_process(home):
        for name in JOBS.values():
            wait_for(name, lambda n=name: running(home, n))
        config = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())
        config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
        for job in config["scrape_configs"]:
            url = (home / "run" / f"{JOBS[job['job_name']]}.metrics").read_text().strip()
            job["static_configs"] = [{"targets": [urllib.parse.urlsplit(url).netloc]}]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        shutil.copyfile(INFRA / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
        port = free_port()
        log = (tmp_path / "prometheus.log").open("wb")
        server = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            prom = Prometheus(f"http://127.0.0.1:{port}")
            wait_for("Prometheus to be ready", lambda: _ready(prom))
            yield home, prom
        finally:
            server.terminate()
            server.wait(30)
            log.close()


def _ready(prom: Prometheus) -> bool:
    try:
        targets = prom.get("/api/v1/targets")["activeTargets"]
    except OSError:
        return False
    return len(targets) == len(JOBS) and all(t["health"] == "up" for t in targets)


def _finite(result: list[dict[str, Any]]) -> bool:
    return any(float(r["value"][1]) == float(r["value"][1]) for r in result)  # not NaN


def test_every_grafana_panel_and_every_rule_works_against_dsr_up(
    prometheus: tuple[Path, Prometheus],
) -> None:
    home, prom = prometheus
    submitter = Submitter.from_settings(
        Settings(home=home), (home / "broker.addr").read_text().strip()
    )
    try:
        submitter.submit_all([json.dumps(e).encode() for e in REQUESTS])
        submitter.submit(MALFORMED)
    finally:
        submitter.close()
    completed = 'sum(dsr_requests_completed_total{status="completed"})'
    wait_for(
        "Prometheus to see the requests completed",
        lambda: (r := prom.query(completed)) and float(r[0]["value"][1]) >= len(REQUESTS),
    )

    # Every query of every panel returns a number while the requests are recent: the
    # panels read what the processes serve, under the labels they serve it with.
    queries = dict.fromkeys(_panel_queries())
    seen: set[tuple[str, str]] = set()

    def all_panels_had_data() -> bool:
        seen.update(q for q in queries if q not in seen and _finite(prom.query(q[1])))
        return len(seen) == len(queries)

    try:
        wait_for("every panel to have data", all_panels_had_data, timeout=90)
    except AssertionError:
        missing = {title: expr for title, expr in queries if (title, expr) not in seen}
        pytest.fail(f"panels without data: {json.dumps(missing, indent=1)}")
    rejected = prom.query('sum(increase(dsr_rejected_events_total{reason_code!=""}[1h]))')
    assert float(rejected[0]["value"][1]) > 0, "the malformed event was counted"

    # The annotation's query is valid PromQL over a series the exporter serves.
    for annotation in GRAFANA["annotations"]["list"]:
        prom.query(annotation["expr"])
    assert prom.query("dsr_redrives_total"), "the exporter serves the redrive counter"

    # Every rule evaluates without error against the real series.
    def rules() -> list[dict[str, Any]]:
        groups = prom.get("/api/v1/rules")["groups"]
        return [r for g in groups for r in g["rules"]]

    wait_for(
        "every rule to be evaluated",
        lambda: all(r["lastEvaluation"][:4] != "0001" for r in rules()),
    )
    broken = {r["name"]: r.get("lastError") for r in rules() if r["health"] != "ok"}
    assert broken == {}
    loaded = yaml.safe_load((INFRA / "prometheus" / "alerts.yml").read_text())
    assert len(rules()) == sum(len(g["rules"]) for g in loaded["groups"])

    # Every pipeline metric the rules and the panels name is served by some process.
    named = set().union(*(_names(expr) for _, expr in _panel_queries()))
    for group in loaded["groups"]:
        for rule in group["rules"]:
            named |= _names(rule["expr"])
    served = set(prom.get("/api/v1/label/__name__/values"))
    assert named - served == set()
