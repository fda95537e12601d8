"""On-call view of a slow system and a failing one, from a real run: its /metrics,
the dashboard's figures, and the dashboard page itself in a headless Chromium."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from services.broker import free_port
from services.client import Watcher
from services.dashboard import Dashboard
from services.demo.scenario import HANAKO, JIRO, TARO, event
from services.monitoring.scrape import Series, scrape, scrape_until, value
from services.stack import Stack
from streams import topics
from tests.integration.fixtures import (
    ARTIFACTS,
    chromium,
    json_api,
    settings_for,
    wait_for,
    with_crm,
)

pytestmark = pytest.mark.integration

SLOW_S = 0.4


@pytest.fixture(scope="module")
def slow_server() -> Iterator[str]:
    """A SaaS CRM that answers correctly, but slowly."""
    with json_api({"items": [{"plan": "gold"}]}, lambda _: time.sleep(SLOW_S)) as url:
        yield url


DATAMAP = with_crm(
    """
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
""",
    timeout_s=60,
)


def mean_call_seconds(runner: Series, system: str) -> float:
    total = value(runner, "dsr_connector_call_seconds_sum", system=system, kind="disclosure")
    count = value(runner, "dsr_connector_call_seconds_count", system=system, kind="disclosure")
    return total / count


@dataclass
class Run:
    stack: Stack
    dashboard: Dashboard
    responses: list[dict[str, object]]
    runner: Series
    worker: Series


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, slow_server: str) -> Iterator[Run]:
    """Three disclosures through a fast, a slow and a failing system; the stack stays up."""
    home = tmp_path_factory.mktemp("slow-and-failing")
    datamap = DATAMAP.replace("SLOW_URL", slow_server).replace("CLOSED_PORT", str(free_port()))
    subjects = [TARO, HANAKO, JIRO]
    stack = Stack(settings_for(home, datamap), log_dir=home / "logs")
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("DSR_TASK_ATTEMPTS", "1")
            stack.start()  # its processes take the environment as it is now
        stack.wait_joined()
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
        submitter = stack.submitter()
        submitter.submit_all(
            [json.dumps(event(f"sf-{i}", "disclosure", s)).encode() for i, s in enumerate(subjects)]
        )
        responses = [b for _, b in watcher.collect(lambda s: len(s) >= 3, 90)]
        submitter.close()
        watcher.close()
        runner = scrape(stack.metrics_urls["runner-0"])
        worker = scrape_until(
            stack.metrics_urls["worker-0"],
            lambda s: sum(v for (n, _), v in s.items() if n == "dsr_requests_completed_total") >= 3,
        )
        dashboard = Dashboard.start(stack.settings.database_url)
        yield Run(stack, dashboard, responses, runner, worker)
        dashboard.stop()
    finally:
        stack.stop()


def test_the_slow_system_is_named_and_the_failing_one_counted(run: Run) -> None:
    assert {r["status"] for r in run.responses} == {"partially_completed"}
    # the slow system is the slowest by name
    means = {s: mean_call_seconds(run.runner, s) for s in ("crm", "billing_saas", "legacy_erp")}
    assert max(means, key=means.__getitem__) == "billing_saas", means
    assert means["billing_saas"] >= SLOW_S
    # the failing system's requests are counted as failed, per system
    failed = {"system": "legacy_erp", "outcome": "failed"}
    assert value(run.runner, "dsr_connector_outcomes_total", **failed) == 3
    assert (
        value(run.runner, "dsr_connector_outcomes_total", system="billing_saas", outcome="ok") == 3
    )
    partial = {"kind": "disclosure", "regulation": "appi", "status": "partially_completed"}
    assert value(run.worker, "dsr_requests_completed_total", **partial) == 3


def test_the_dashboard_names_the_slow_system_and_counts_the_failures(run: Run) -> None:
    overview = json.loads(urllib.request.urlopen(run.dashboard.url + "api/overview").read())
    systems = {s["system"]: s for s in overview["systems"]}
    assert overview["systems"][0]["system"] == "billing_saas"  # slowest first
    assert systems["billing_saas"]["p50"] >= SLOW_S * 1000
    assert (systems["legacy_erp"]["failed"], systems["legacy_erp"]["n"]) == (3, 3)
    assert (systems["crm"]["failed"], systems["billing_saas"]["failed"]) == (0, 0)
    assert overview["failure_rate"]["unsuccessful"] == 3
    assert {k["kind"]: k["n"] for k in overview["kinds"]} == {"disclosure": 3}


def test_grafana_and_the_dashboard_mean_the_same_slow(run: Run) -> None:
    """Both rank by task time, retries included: the runner's dsr_task_seconds counts the
    tasks the dashboard counts, and the dashboard's median task time falls within the
    histogram bucket where Prometheus finds the median."""
    overview = json.loads(urllib.request.urlopen(run.dashboard.url + "api/overview").read())
    assert "retries" in overview["task_time"]
    for shown in overview["systems"]:
        system = shown["system"]
        timed = {
            outcome: value(run.runner, "dsr_task_seconds_count", system=system, outcome=outcome)
            for outcome in ("ok", "failed")
        }
        assert sum(timed.values()) == shown["n"], (system, timed)
        buckets = sorted(
            (float(dict(labels)["le"]), v)
            for (name, labels), v in run.runner.items()
            if name == "dsr_task_seconds_bucket" and dict(labels)["system"] == system
        )
        cumulative: dict[float, float] = {}
        for le, v in buckets:
            cumulative[le] = cumulative.get(le, 0.0) + v
        bounds = sorted(cumulative)
        upper = next(le for le in bounds if cumulative[le] >= shown["n"] / 2)
        lower = max([le for le in bounds if le < upper], default=0.0)
        assert lower * 1000 <= shown["p50"] <= upper * 1000, (system, shown, lower, upper)


def submit_old_request(run: Run, request_id: str) -> None:
    """A request received 60 days ago and still held for identity verification."""
    submitter = run.stack.submitter()
    old = event(
        request_id,
        "disclosure",
        TARO,
        received_at=(datetime.now(UTC) - timedelta(days=60)).isoformat(),
        verification={"status": "pending", "method": "post", "reference": "KYC-old"},
    )
    submitter.submit_all([json.dumps(old).encode()])
    submitter.close()


def test_the_deadline_gauge_moves_when_a_request_looks_old(run: Run) -> None:
    url = run.stack.metrics_urls["exporter"]  # the ledger's gauges are the exporter's
    gauges = [
        ("dsr_deadline_at_risk", {"regulation": "appi", "window": "overdue"}),
        ("dsr_requests_in_flight", {"status": "held_verification"}),
    ]
    before = scrape(url)
    submit_old_request(run, "sf-old-gauge")
    # each gauge is read from the ledger at scrape time, one query after another: wait
    # for a scrape taken after the request was recorded by both
    after = scrape_until(
        url,
        lambda s: all(value(s, n, **labels) > value(before, n, **labels) for n, labels in gauges),
    )
    for name, labels in gauges:
        assert value(after, name, **labels) == value(before, name, **labels) + 1, name


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium (make test installs it)")
def test_the_dashboard_page_in_chromium(run: Run) -> None:
    from playwright.sync_api import expect, sync_playwright

    # an overdue request, held: it shows in flight, as overdue and on the calendar
    submit_old_request(run, "sf-old")
    overview = run.dashboard.url + "api/overview"
    wait_for(
        "the held request in the overview",
        lambda: "sf-old" in urllib.request.urlopen(overview).read().decode(),
        30,
    )
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(run.dashboard.url)

        # charts render with the run's data: one line per kind, and per system
        kind_lines = page.locator('svg[data-chart="kind"] path.series')
        expect(kind_lines).to_have_count(1)
        assert kind_lines.get_attribute("data-series") == "disclosure"
        system_lines = page.locator('svg[data-chart="system"] path.series')
        expect(system_lines).to_have_count(3)
        assert sorted(system_lines.evaluate_all("ps => ps.map(p => p.dataset.series)")) == [
            "billing_saas",
            "crm",
            "legacy_erp",
        ]
        # the slow system heads the table; the failing one is marked
        expect(page.locator("#systems tbody tr").first).to_have_attribute(
            "data-system", "billing_saas"
        )
        expect(page.locator('#systems tr[data-system="legacy_erp"]')).to_have_class("bad")
        # the overdue request is in flight, in the overdue box and on today's calendar cell
        expect(page.locator("#inflight tbody tr.bad").first).to_contain_text("sf-old")
        expect(page.locator("#overdue")).to_contain_text("sf-old")
        expect(page.locator(".calendar .day.today.overdue")).to_have_count(1)

        # drill-down into a completed request, by id
        page.fill("#lookup input", "sf-0")
        page.click("#lookup button")
        expect(page.locator("#drilldown")).to_be_visible()
        stages = page.locator("#dd-stages .row")
        expect(stages).to_have_count(6)
        assert stages.evaluate_all("rs => rs.map(r => r.dataset.stage)") == [
            "intake",
            "system:billing_saas",
            "system:crm",
            "system:legacy_erp",
            "aggregation",
            "total",
        ]
        expect(page.locator('#dd-stages [data-stage="system:legacy_erp"] .bar')).to_have_class(
            "bar failed"
        )
        # and into the held one, from the in-flight table
        page.locator("#inflight").get_by_role("link", name="sf-old", exact=True).click()
        expect(page.locator("#dd-id")).to_have_text("sf-old")
        expect(page.locator('#dd-stages [data-stage="held"]')).to_have_count(1)

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        html = page.content()
        browser.close()
    assert not problems, problems
    for subject in (TARO, HANAKO, JIRO):
        assert subject["email"] not in html
