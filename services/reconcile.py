"""Re-drive every open request from the ledger, after the broker lost its messages.

The ledger, not Kafka, is the record of what is in flight. If the broker restarts
empty (the embedded broker keeps nothing on disk) or topics are deleted, the tasks
and events in flight are gone, but every request that was admitted is still in the
ledger. Reconciling sends each open request (accepted, or fanned out and waiting on
systems) to fan-out again: fan-out re-sends the tasks still pending, a task's first
result wins, and a request completes once, so reconciling twice does no harm.

Held requests wait for a later event and need nothing. Requests that reached the
broker but not intake are not in the ledger: their producers must submit them again
(``dsr submit`` is safe to repeat, ``request_id`` is the idempotency key).
"""

from __future__ import annotations

from typing import NamedTuple

from kafka import KafkaProducer

from services.broker import create_topics
from services.datamap import DataMap
from services.ledger import Ledger
from streams import topics
from streams.records import Accepted, AcceptedVia, dump


class Reconciled(NamedTuple):
    redriven: int
    #: How existing topics differ from what the pipeline expects (``create_topics``).
    drift: list[str]


def reconcile(
    bootstrap: str,
    ledger: Ledger,
    datamap: DataMap,
    *,
    replication: int | None = None,
    min_isr: int | None = None,
) -> Reconciled:
    """Create any missing topics, then re-drive every open request."""
    drift = create_topics(
        bootstrap,
        topics.all_topics(sorted(datamap.systems)),
        replication=replication,
        min_isr=min_isr,
    )
    open_ids = ledger.open_fan_outs()
    # Not idempotent: the broker has just restarted and lost its producer ids
    # (connectors/runner/sending.py, producer_config).
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    try:
        for rid in open_ids:
            again = Accepted(request_id=rid, via=AcceptedVia.RECONCILE)
            producer.send(topics.ACCEPTED, key=rid.encode(), value=dump(again))
        producer.flush()
    finally:
        producer.close()
    if open_ids:
        ledger.record_reconciled(len(open_ids))
    return Reconciled(len(open_ids), drift)
