"""The alert rules under Prometheus's own tools: promtool checks the rules and the scrape
configs and runs the unit tests in infra/prometheus/tests/ (every alert firing and not
firing), amtool checks the Alertmanager configuration. ``make test`` installs both
from Debian; without them these tests are skipped and say so."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

INFRA = Path(__file__).parents[2] / "infra"
RULES = INFRA / "prometheus" / "alerts.yml"
UNIT_TESTS = sorted((INFRA / "prometheus" / "tests").glob("*.yml"))


def run(tool: str, *args: str) -> str:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (Debian's prometheus and prometheus-alertmanager)")
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def alerts() -> set[str]:
    body = yaml.safe_load(RULES.read_text())
    return {r["alert"] for g in body["groups"] for r in g["rules"] if "alert" in r}


def test_the_rules_and_the_scrape_configs_are_valid() -> None:
    run("promtool", "check", "rules", str(RULES))
    for config in ("prometheus.yml", "prometheus-compose.yml"):
        run("promtool", "check", "config", str(INFRA / "prometheus" / config))


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    run("promtool", "test", "rules", *map(str, UNIT_TESTS))


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts() - firing == set(), "alerts never shown firing"
    assert alerts() - quiet == set(), "alerts never shown quiet"


def test_every_runbook_link_is_absolute_and_its_anchor_exists() -> None:
    runbook = (INFRA.parent / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", runbook, re.M)
    }
    body = yaml.safe_load(RULES.read_text())
    for rule in (r for g in body["groups"] for r in g["rules"] if "alert" in r):
        url = rule["annotations"]["runbook_url"]
        base, _, anchor = url.partition("#")
        assert base == "{{ $externalLabels.runbook_base }}", rule["alert"]
        assert anchor in anchors, rule["alert"]
    for config in ("prometheus.yml", "prometheus-compose.yml"):
        labels = yaml.safe_load((INFRA / "prometheus" / config).read_text())["global"]
        assert labels["external_labels"]["runbook_base"].startswith("https://")


def test_summaries_print_counts_rounded() -> None:
    body = RULES.read_text()
    assert "{{ $value }}" not in body, "an unformatted value prints 53.443963333333336"


def test_the_alertmanager_configuration_is_valid() -> None:
    out = run("amtool", "check-config", str(INFRA / "alertmanager" / "alertmanager.yml"))
    assert "SUCCESS" in out
    config = yaml.safe_load((INFRA / "alertmanager" / "alertmanager.yml").read_text())
    named = {
        name
        for rule in config["inhibit_rules"]
        for side in ("source_matchers", "target_matchers")
        for matcher in rule[side]
        for name in re.findall(r"DSR\w+", matcher)
    }
    assert named <= alerts(), "an inhibition names an alert that does not exist"
