"""Topic names and partition counts: the one place that lists them.

Every topic is keyed by ``request_id`` so that all of a request's events land on
one partition and are handled in order by one worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

PREFIX = os.environ.get("DSR_TOPIC_PREFIX", "dsr")
PARTITIONS = int(os.environ.get("DSR_TOPIC_PARTITIONS", "4"))


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    purpose: str


def _t(suffix: str) -> str:
    return f"{PREFIX}.{suffix}"


REQUESTS = _t("requests")
REJECTED = _t("requests.rejected")
ACCEPTED = _t("accepted")
RESULTS = _t("results")
DECISIONS = _t("decisions")
RESPONSES = _t("responses")
NOTICES = _t("notices")
DEAD_LETTER = _t("deadletter")
PROVISIONS = _t("provisions")
TASKS_PREFIX = _t("tasks.")

#: The consumer groups: Faust workers (the app's id) and connector runners.
PIPELINE_GROUP = f"{PREFIX}-pipeline"
CONNECTORS_GROUP = f"{PREFIX}-connectors"


def tasks_topic(system: str) -> str:
    """Each system has its own task topic, so its lag and its runner stand alone."""
    return f"{TASKS_PREFIX}{system}"


def consumed(systems: list[str]) -> dict[str, list[str]]:
    """The topics each consumer group reads: where its lag is measured."""
    return {
        PIPELINE_GROUP: [REQUESTS, DECISIONS, ACCEPTED, RESULTS, PROVISIONS, NOTICES, DEAD_LETTER],
        CONNECTORS_GROUP: [tasks_topic(s) for s in systems],
    }


def core_topics(partitions: int = PARTITIONS) -> list[TopicSpec]:
    return [
        TopicSpec(REQUESTS, partitions, "request events submitted by privacy operations"),
        TopicSpec(REJECTED, 1, "malformed request events, with a machine-readable reason"),
        TopicSpec(ACCEPTED, partitions, "validated, released requests waiting for fan-out"),
        TopicSpec(RESULTS, partitions, "per-system task results from connector runners"),
        TopicSpec(DECISIONS, partitions, "operators' decisions on open requests (extensions)"),
        TopicSpec(RESPONSES, partitions, "completed responses"),
        TopicSpec(NOTICES, partitions, "notices due to the principal, sent by the notifier"),
        TopicSpec(DEAD_LETTER, 1, "tasks and events that exhausted their retries"),
        TopicSpec(PROVISIONS, partitions, "provision and receipt records from systems"),
    ]


def all_topics(systems: list[str], partitions: int = PARTITIONS) -> list[TopicSpec]:
    return core_topics(partitions) + [
        TopicSpec(tasks_topic(s), partitions, f"tasks for system {s}") for s in systems
    ]
