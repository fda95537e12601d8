"""The Prometheus and Grafana files in infra/ refer only to metrics and labels that exist.

promtool is not available here, so the rule and dashboard files are parsed and
every metric name and label in their PromQL is checked against the registry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

import yaml
from prometheus_client.metrics import MetricWrapperBase

from services.ledger import Ledger
from services.monitoring import metrics
from services.monitoring.exporter import GroupLagCollector
from services.monitoring.ledger import LedgerCollector

INFRA = Path(__file__).parents[2] / "infra"
RUNBOOK = Path(__file__).parents[2] / "docs" / "operations.md"
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "bool", "offset"}
KEYWORDS |= {"group_left", "group_right", "inf", "nan"}
#: Labels Prometheus adds: the target's, and the histogram bucket bound.
ADDED_LABELS = {"job", "instance", "le"}
#: What the exporter serves, from its collectors' own descriptions.
EXPORTED = {
    family.name: set(family._labelnames)  # noqa: SLF001 - a family's labels
    for collector in (LedgerCollector(cast(Ledger, None)), GroupLagCollector("", {}))
    for family in collector.describe()
}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def exposed() -> dict[str, set[str]]:
    """Every series name the processes expose, with its labels."""
    names: dict[str, set[str]] = {"up": set(), **EXPORTED}
    for name in metrics.REGISTRY._names_to_collectors:  # noqa: SLF001 - no public listing
        names.setdefault(name, set())
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            labels = set(value._labelnames)  # noqa: SLF001
            base = value._name  # noqa: SLF001
            for suffix in ("", *SUFFIXES.get(value._type, ())):  # noqa: SLF001
                names[base + suffix] = labels
    return names


def promql_names(expr: str) -> set[str]:
    """The metric names an expression reads (functions, keywords and labels left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group() in KEYWORDS:
            continue
        if match.start() > 0 and (
            text[match.start() - 1].isdigit() or text[match.start() - 1] == "."
        ):
            continue  # a number such as 1e3
        names.add(match.group())
    return names


def promql_labels(expr: str) -> dict[str, set[str]]:
    """Labels per metric from selectors (``m{a="x"}``), and under ``""`` those of ``by (...)``."""
    out: dict[str, set[str]] = {}
    for metric, body in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", expr):
        out.setdefault(metric, set()).update(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", body))
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        out.setdefault("", set()).update(x.strip() for x in group.split(",") if x.strip())
    return out


def check_expr(expr: str, known: dict[str, set[str]]) -> list[str]:
    problems = [f"unknown metric {n}" for n in sorted(promql_names(expr)) if n not in known]
    read = promql_names(expr) & set(known)
    available = set().union(*(known[n] for n in read), ADDED_LABELS) if read else ADDED_LABELS
    for metric, labels in promql_labels(expr).items():
        allowed = available if metric == "" else known.get(metric, set()) | ADDED_LABELS
        problems += [f"unknown label {label} on {metric or 'by'}" for label in labels - allowed]
    return problems


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((INFRA / "prometheus" / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def recorded() -> dict[str, set[str]]:
    """The series the recording rules make (they aggregate every label away)."""
    return {rule["record"]: set() for rule in rules() if "record" in rule}


def grafana_exprs() -> list[tuple[str, str]]:
    doc = json.loads((INFRA / "grafana" / "dsr-pipeline.json").read_text())
    return [
        (panel["title"], target["expr"])
        for panel in doc["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def test_the_checker_finds_made_up_metrics_and_labels() -> None:
    known = exposed()
    assert promql_names(
        'histogram_quantile(0.99, sum by (le, kind) (rate(dsr_stage_seconds_bucket{x="a"}[5m])))'
    ) == {"dsr_stage_seconds_bucket"}
    assert check_expr("rate(dsr_made_up_total[5m]) > 0", known) == [
        "unknown metric dsr_made_up_total"
    ]
    assert check_expr('dsr_consumer_group_lag{system="crm"}', known) == [
        "unknown label system on dsr_consumer_group_lag"
    ]
    assert check_expr("sum by (colour) (dsr_consumer_group_lag)", known) == [
        "unknown label colour on by"
    ]
    assert check_expr('max by (topic) (dsr_consumer_group_lag{group="g"}) > 1e3', known) == []


def test_every_alert_is_complete_and_reads_only_metrics_that_exist() -> None:
    alerts = alert_rules()
    names = [r["alert"] for r in alerts]
    assert len(names) == len(set(names))
    assert {
        "DSRRequestLatencyHigh",
        "DSRSystemFailureRate",
        "DSRConsumerLagGrowing",
        "DSRDeadLetters",
        "DSRDeadlineAtRisk",
        "DSRWorkerDown",
    } <= set(names)
    known = exposed()
    for rule in (r for r in rules() if "record" in r):
        assert check_expr(rule["expr"], known) == [], rule["record"]
    known |= recorded()
    for rule in alerts:
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert rule["annotations"]["runbook_url"].endswith(f"#{rule['alert'].lower()}")
        assert check_expr(rule["expr"], known) == [], rule["alert"]


def test_the_runbook_has_a_section_for_every_alert() -> None:
    headings = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip()).lower().replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("#")
    }
    missing = [r["alert"] for r in alert_rules() if r["alert"].lower() not in headings]
    assert missing == []


def test_every_grafana_panel_reads_only_metrics_that_exist() -> None:
    doc = json.loads((INFRA / "grafana" / "dsr-pipeline.json").read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    exprs = grafana_exprs()
    assert len(exprs) >= 15
    known = exposed()
    for title, expr in exprs:
        assert check_expr(expr, known) == [], title


def test_the_scrape_config_loads_the_rules_and_scrapes_every_job() -> None:
    config = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())
    for rule_file in config["rule_files"]:
        assert (INFRA / "prometheus" / rule_file).exists()
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"dsr-worker", "dsr-runner", "dsr-exporter"}
    uses = {m for r in alert_rules() for m in re.findall(r'job="([^"]+)"', r["expr"])}
    assert uses <= jobs
