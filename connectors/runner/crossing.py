"""A task and its result as they cross the broker: a sealed task opened for its
connector, and the result sealed (and checked in when large) for the worker."""

from __future__ import annotations

from services.crypto.sealing import Sealer
from services.delivery.claims import ClaimCheck
from streams.records import Task, TaskResult


def opened(task: Task, sealer: Sealer | None) -> Task:
    """``task`` as its connector sees it: opened if it came sealed."""
    if task.sealed is None:
        return task
    if sealer is None:
        raise ValueError("the task is sealed and this runner has no keys (DSR_SEAL_EVENTS)")
    return sealer.open(task)


def outgoing(
    result: TaskResult, received: Task, sealer: Sealer | None, claims: ClaimCheck | None
) -> TaskResult:
    """``result`` as sent: sealed when its task came sealed, by claim check if large."""
    if received.sealed is None or sealer is None:
        return result
    result = sealer.seal(result)
    return claims.check_in(result) if claims is not None else result
