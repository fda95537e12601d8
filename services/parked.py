"""Parked requests, for operators: listed, and released once the cause is fixed.

A request is parked when handling it raised something other than a database or broker
error (``streams.parking``): the worker carries on with the others, and nothing retries
it. ``release`` puts it back in the state it was parked from and sends it on again:

- accepted or fanned out: to fan-out, which plans what is missing and re-sends what
  is pending, or builds the response when nothing is (as ``dsr reconcile`` does);
- refused before its response was built: the sweeper builds it;
- held: it waits for its release event, as before.

If it raises again, it is parked again, with the new reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from kafka import KafkaProducer

from services.ledger import Ledger, RequestStatus, Unparked, as_utc
from streams import topics
from streams.records import Accepted, AcceptedVia, dump

#: The states from which a released request goes back to fan-out.
TO_FAN_OUT = (RequestStatus.ACCEPTED, RequestStatus.FANNED_OUT)


@dataclass(frozen=True)
class Released:
    outcome: Unparked
    #: The status the request is back in (or is in, when it was not parked).
    status: str | None
    sent_to: str | None = None


def listed(ledger: Ledger, limit: int = 200) -> list[dict[str, Any]]:
    """The parked requests, soonest deadline first: ids, codes and dates only."""
    rows = ledger.open_requests(limit, statuses=[RequestStatus.PARKED])
    return [
        {
            "request_id": r.request_id,
            "kind": r.kind,
            "regulation": r.regulation,
            "error_code": r.hold_reason,
            "deadline": as_utc(r.deadline_at).isoformat(timespec="seconds"),
        }
        for r in rows
    ]


def release(
    ledger: Ledger, bootstrap: str, request_id: str, by: str, timeout: timedelta
) -> Released:
    """Un-park ``request_id`` (audited as ``operator:<by>``) and send it on again; a
    fanned-out one has ``timeout`` (the data map's request timeout) again to finish."""
    outcome, status = ledger.release_parked(request_id, by, timeout)
    if outcome is not Unparked.RELEASED or status not in TO_FAN_OUT:
        return Released(outcome, status)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        again = Accepted(request_id=request_id, via=AcceptedVia.RELEASE)
        producer.send(topics.ACCEPTED, key=request_id.encode(), value=dump(again))
        producer.flush()
    finally:
        producer.close()
    return Released(outcome, status, topics.ACCEPTED)
