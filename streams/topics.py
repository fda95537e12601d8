"""Topic names and partition counts: the one place that lists them.

Every topic is keyed by ``request_id`` so that all of a request's events land on
one partition and are handled in order by one worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from services.settings import for_process

#: The names below are made from the deployment's topic prefix (``DSR_TOPIC_PREFIX``) on
#: first use, not at import (``__getattr__``): declared here for readers and type checkers.
PREFIX: str
PARTITIONS: int
REQUESTS: str
REJECTED: str
ACCEPTED: str
RESULTS: str
DECISIONS: str
RESPONSES: str
NOTICES: str
DEAD_LETTER: str
PROVISIONS: str
TASKS_PREFIX: str
#: The consumer groups: Faust workers (the app's id) and connector runners.
PIPELINE_GROUP: str
CONNECTORS_GROUP: str

_SUFFIXES = {
    "REQUESTS": ".requests",
    "REJECTED": ".requests.rejected",
    "ACCEPTED": ".accepted",
    "RESULTS": ".results",
    "DECISIONS": ".decisions",
    "RESPONSES": ".responses",
    "NOTICES": ".notices",
    "DEAD_LETTER": ".deadletter",
    "PROVISIONS": ".provisions",
    "TASKS_PREFIX": ".tasks.",
    "PIPELINE_GROUP": "-pipeline",
    "CONNECTORS_GROUP": "-connectors",
}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    purpose: str


@cache
def _names() -> dict[str, str | int]:
    settings = for_process()
    prefix = settings.topic_prefix
    names: dict[str, str | int] = {k: prefix + suffix for k, suffix in _SUFFIXES.items()}
    return {**names, "PREFIX": prefix, "PARTITIONS": settings.topic_partitions}


def _name(key: str) -> str:
    return str(_names()[key])


def __getattr__(name: str) -> str | int:
    if name not in _SUFFIXES and name not in ("PREFIX", "PARTITIONS"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _names()[name]


def tasks_topic(system: str) -> str:
    """Each system has its own task topic, so its lag and its runner stand alone."""
    return f"{_name('TASKS_PREFIX')}{system}"


def consumed(systems: list[str]) -> dict[str, list[str]]:
    """The topics each consumer group reads: where its lag is measured."""
    pipeline = ["REQUESTS", "DECISIONS", "ACCEPTED", "RESULTS", "PROVISIONS", "NOTICES"]
    return {
        _name("PIPELINE_GROUP"): [_name(k) for k in [*pipeline, "DEAD_LETTER"]],
        _name("CONNECTORS_GROUP"): [tasks_topic(s) for s in systems],
    }


_PURPOSES = {
    "REQUESTS": "request events submitted by privacy operations",
    "REJECTED": "malformed request events, with a machine-readable reason",
    "ACCEPTED": "validated, released requests waiting for fan-out",
    "RESULTS": "per-system task results from connector runners",
    "DECISIONS": "operators' decisions on open requests (extensions)",
    "RESPONSES": "completed responses",
    "NOTICES": "notices due to the principal, sent by the notifier",
    "DEAD_LETTER": "tasks and events that exhausted their retries",
    "PROVISIONS": "provision and receipt records from systems",
}
#: Written rarely and read by operators: one partition keeps them in order.
_SINGLE = {"REJECTED", "DEAD_LETTER"}


def core_topics(partitions: int | None = None) -> list[TopicSpec]:
    n = partitions or int(_names()["PARTITIONS"])
    return [TopicSpec(_name(k), 1 if k in _SINGLE else n, p) for k, p in _PURPOSES.items()]


def all_topics(systems: list[str], partitions: int | None = None) -> list[TopicSpec]:
    n = partitions or int(_names()["PARTITIONS"])
    return core_topics(n) + [TopicSpec(tasks_topic(s), n, f"tasks for system {s}") for s in systems]
