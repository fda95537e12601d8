"""The deployment files are valid as written: infra/docker-compose.yml against the Compose
Specification's JSON schema, infra/k8s/ against Kubernetes' OpenAPI schemas
(kubernetes-validate, offline), and what no schema can see: the KRaft cluster id, topic
replication against the brokers, keys that outlive a restart, probes on the heartbeat,
disruption budgets, and settings the code really reads.

Not checked: that the images exist, that the containers start (no container engine runs
in CI), or Strimzi's custom resources (docs only)."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services.settings import variables

ROOT = Path(__file__).parents[2]
INFRA = ROOT / "infra"
COMPOSE_SCHEMA = json.loads((Path(__file__).parent / "schemas" / "compose-spec.json").read_text())
K8S_VERSION = "1.33"


def compose() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((INFRA / "docker-compose.yml").read_text())
    return body


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in sorted((INFRA / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def settings_read_by_code() -> set[str]:
    """Every DSR_* name the code reads: the settings' (``services.settings``)."""
    return set(variables())


# -- compose ------------------------------------------------------------------------


def test_the_compose_file_follows_the_compose_specification() -> None:
    jsonschema.validate(compose(), COMPOSE_SCHEMA)


def test_a_broken_compose_file_is_refused() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["worker"]["depends_on"]["init"]["condition"] = "when_it_feels_like_it"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, COMPOSE_SCHEMA)
    broken = copy.deepcopy(compose())
    broken["services"]["runner"]["restart_policy"] = "always"  # not a service key
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, COMPOSE_SCHEMA)


def test_the_kraft_cluster_is_valid_and_replicates_three_times() -> None:
    services = compose()["services"]
    brokers = {n: s for n, s in services.items() if n.startswith("kafka-")}
    assert len(brokers) == 3
    ids = {s["environment"]["CLUSTER_ID"] for s in brokers.values()}
    assert len(ids) == 1
    (cluster_id,) = ids
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, "not a base64url UUID"
    voters = next(iter(brokers.values()))["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert sorted(v.split("@")[1].split(":")[0] for v in voters.split(",")) == sorted(brokers)
    for service in brokers.values():
        env = service["environment"]
        assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == 3
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 2
    pipeline = services["worker"]["environment"]
    assert int(pipeline["DSR_TOPIC_REPLICATION"]) <= len(brokers)
    assert int(pipeline["DSR_TOPIC_MIN_ISR"]) < int(pipeline["DSR_TOPIC_REPLICATION"])
    assert {b.split(":")[0] for b in pipeline["DSR_KAFKA_BOOTSTRAP"].split(",")} == set(brokers)


def test_the_pipeline_services_start_after_their_topics_and_keep_their_keys() -> None:
    body = compose()
    services = body["services"]
    assert "reconcile" in " ".join(services["init"]["command"])
    for name in ("worker", "runner", "exporter"):
        service = services[name]
        assert service["depends_on"]["init"] == {"condition": "service_completed_successfully"}
        assert service["healthcheck"]["test"][:3] == ["CMD", "dsr", "health"]
        keys = service["environment"]["DSR_KEYS_DIR"]
        volumes = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert volumes[keys] in body["volumes"], "the keys must be on a named volume"
    unknown = {
        name
        for service in services.values()
        for name in (service.get("environment") or {})
        if name.startswith("DSR_")
    } - settings_read_by_code()
    assert unknown == set(), "settings the code does not read"


def test_prometheus_scrapes_the_services_by_their_compose_names() -> None:
    services = compose()["services"]
    mounted = services["prometheus"]["command"][0].split("=")[1]
    config = yaml.safe_load((INFRA / "prometheus" / Path(mounted).name).read_text())
    assert (INFRA / "prometheus" / config["rule_files"][0]).exists()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"dsr-worker", "dsr-runner", "dsr-exporter"}
    for job in jobs.values():
        assert "static_configs" not in job, "127.0.0.1 inside a container is Prometheus itself"
        for sd in job["dns_sd_configs"]:
            for name in sd["names"]:
                assert name in services
                assert str(sd["port"]) == services[name]["environment"]["DSR_METRICS_PORT"]


# -- Kubernetes ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "doc"), k8s_documents(), ids=lambda v: str(v)[:40])
def test_every_kubernetes_manifest_is_valid(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_kubernetes_manifest_is_refused() -> None:
    deployment = next(d for _, d in k8s_documents() if d["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["exec"]["command"] = "dsr health"  # a string, not a list
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_keys_outlive_pods_and_probes_watch_the_event_loop() -> None:
    docs = [d for _, d in k8s_documents()]
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "dsr-config"
    )
    env = config["data"]
    assert set(env) - settings_read_by_code() == set(), "settings the code does not read"
    budgets = {
        d["spec"]["selector"]["matchLabels"]["app"]
        for d in docs
        if d["kind"] == "PodDisruptionBudget"
    }
    kinds = ("Deployment", "Job")
    for deployment in (d for d in docs if d["kind"] in kinds and not _is_exporter(d)):
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        keys = volumes[mounts[env["DSR_KEYS_DIR"]]]
        assert "persistentVolumeClaim" in keys, "keys on an emptyDir die with the pod"
        master_dir = str(Path(env["DSR_MASTER_KEY_FILE"]).parent)
        assert "secret" in volumes[mounts[master_dir]]
        if deployment["kind"] == "Deployment":
            container = pod["containers"][0]
            for probe in ("readinessProbe", "livenessProbe"):
                assert container[probe]["exec"]["command"][:2] == ["dsr", "health"]
            assert deployment["metadata"]["labels"]["app"] in budgets
    exporter = next(d for d in docs if _is_exporter(d))
    container = exporter["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "services.monitoring.exporter"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"][:3] == ["dsr", "health", "exporter"]


def _is_exporter(doc: dict[str, Any]) -> bool:
    """The exporter reads the ledger and the brokers; it holds no keys."""
    return bool(doc["metadata"]["name"] == "dsr-exporter")
