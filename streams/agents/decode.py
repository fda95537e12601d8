"""Decoding the events the worker reads beyond requests (``services.parsing``): accepted
requests, and results, validated with their sealed or claim-checked parts opened. An
event that can never be processed raises ``PoisonEvent``, for the dead-letter topic."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from services.crypto import CryptoError
from services.delivery.storage import ObjectNotFound
from streams.context import Pipeline
from streams.records import Accepted, Task, TaskResult


class PoisonEvent(Exception):
    """An event that can never be processed; it goes to the dead-letter topic."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


def accepted(raw: bytes) -> str:
    """The request an ``Accepted`` message sends to fan-out; ``PoisonEvent`` otherwise."""
    try:
        return Accepted.read(raw).request_id
    except ValueError as exc:  # pydantic's ValidationError and UnicodeDecodeError are ones
        raise PoisonEvent("invalid accepted message", str(exc)[:500]) from None


@dataclass(frozen=True)
class Parsed:
    """A result event that validated and opened: the result as it came (sealed), and
    the identity units it found."""

    result: TaskResult
    found: list[dict[str, str]]


def parse_result(ctx: Pipeline, raw: bytes) -> Parsed:
    """Validate a result event and check that it opens; ``PoisonEvent`` otherwise."""
    try:
        result = TaskResult.model_validate_json(raw)
    except ValidationError as exc:
        raise PoisonEvent("invalid task result", str(exc)[:500]) from None
    # Checked before it is recorded; the ledger keeps it as it came, sealed.
    # Only the resolve phase's lookups extend the identity graph.
    found = opened(ctx, result).identities if Task.is_lookup_id(result.task_id) else []
    return Parsed(result, found)


def opened(ctx: Pipeline, result: TaskResult) -> TaskResult:
    """``result`` with its personal fields opened (``services.crypto.sealing``), read back from
    the store first if it came by claim check (``services.delivery.claims``)."""
    if result.claim is not None:
        if ctx.claims is None:
            raise PoisonEvent("claimed task result", "this worker has no claim check store")
        try:
            result = ctx.claims.redeem(result)
        except (ObjectNotFound, ValueError) as exc:
            raise PoisonEvent("task result claim unusable", str(exc)[:500]) from None
    if result.sealed is None:
        return result
    if ctx.sealer is None:
        raise PoisonEvent("sealed task result", "this worker does not seal (DSR_SEAL_EVENTS)")
    try:
        return ctx.sealer.open(result)
    except (CryptoError, ValueError) as exc:
        raise PoisonEvent("task result does not open", str(exc)[:500]) from None
