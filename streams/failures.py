"""What a worker stage does with events it cannot handle: each goes to the dead-letter
topic with what went wrong, its original sealed to the pipeline; ``streams.parking`` says
whether the request is set aside too."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from services import deadletters
from services.crypto.sealing import Sealer
from streams import parking, topics
from streams.agents.decode import PoisonEvent
from streams.context import Outgoing
from streams.records import dump

log = logging.getLogger("dsr.worker")


def request_id_of(event: Any) -> str | None:
    """The request an event is about: its key, or the ``request_id`` in its JSON body;
    None if it names none."""
    raw: bytes = event.value
    found: Any = event.key
    if found:
        return bytes(found).decode("utf-8", "replace")[:128]
    try:
        found = json.loads(raw).get("request_id")
    except Exception:  # noqa: BLE001 - not JSON, or not an object: it names no request
        return None
    return found[:128] if isinstance(found, str) else None


def each_alone(
    events: Sequence[Any],
    handle: Callable[[Sequence[Any]], list[Outgoing]],
    fail: Callable[[Sequence[Any], Exception], list[Outgoing]],
) -> list[Outgoing]:
    """What ``handle`` gives for the batch ``events``. If it raises, each event is
    handled again alone, and ``fail`` gets those that still raise: so a bad event is
    dead-lettered (or its request parked) alone, and the others go on. A transient fault
    (the ledger busy or away) is the whole batch's: ``fail`` gets it at once."""
    try:
        return handle(events)
    except Exception as exc:  # noqa: BLE001 - the worker must keep running
        if len(events) > 1 and not parking.is_transient(exc):
            return [o for e in events for o in each_alone([e], handle, fail)]
        return fail(events, exc)


def dead_letters(
    stage: str, events: Sequence[Any], exc: Exception, sealer: Sealer | None
) -> list[Outgoing]:
    """``events`` to the dead-letter topic, with what went wrong."""
    if isinstance(exc, PoisonEvent):
        return [_letter(stage, str(exc), exc.detail, e, sealer) for e in events]
    log.error("handler failed", exc_info=exc, extra={"stage": stage})
    return [_letter(stage, type(exc).__name__, str(exc)[:500], e, sealer) for e in events]


def _letter(stage: str, error: str, detail: str, event: Any, sealer: Sealer | None) -> Outgoing:
    """What went wrong, and the original event with its headers (a request's signature)
    sealed to the pipeline (``deadletters.letter``); ``dsr dlq redrive`` sends it back to
    ``stage``."""
    raw: bytes = event.value or b""
    headers = {k: bytes(v).decode("utf-8", "replace") for k, v in dict(event.headers or {}).items()}
    key = event.key.decode("utf-8", "replace") if event.key else None
    body = deadletters.letter(
        stage,
        error,
        raw,
        sealer=sealer,
        attempts=1,
        headers=headers,
        detail=detail,
        request_id=key,
    )
    return Outgoing(topics.DEAD_LETTER, event.key, dump(body), record=body)
