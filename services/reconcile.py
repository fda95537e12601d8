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

Told when the loss began (``lost_since``), it also gives the principals back what the
lost logs held for them: the responses published since then are marked unsent, and the
workers' sweeper sends each again; the notices owed to the open requests admitted or
changed since then (acknowledgement, hold, extension) are queued again. The notices
agent sends a notice once, whatever asks for it twice, so one sent already is not sent
again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from kafka import KafkaProducer

from services import rules
from services.broker import create_topics
from services.datamap import DataMap
from services.ledger import Ledger, RequestStatus
from streams import topics
from streams.records import Accepted, AcceptedVia, NoticeDue, dump, utcnow

#: The responses a lost log held are sent again if their requests completed within this
#: long: Apache Kafka's default retention.
RESEND_RESPONSES_WITHIN = timedelta(days=7)


class Reconciled(NamedTuple):
    redriven: int
    #: How existing topics differ from what the pipeline expects (``create_topics``).
    drift: list[str]
    #: Responses to be sent again, and notices queued again (with ``lost_since``).
    responses: int = 0
    notices: int = 0


def reconcile(
    bootstrap: str,
    ledger: Ledger,
    datamap: DataMap,
    *,
    lost_since: datetime | None = None,
    replication: int | None = None,
    min_isr: int | None = None,
) -> Reconciled:
    """Create any missing topics, then re-drive every open request; with ``lost_since``,
    send again what the principals were owed since then."""
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
    responses = notices = 0
    try:
        for rid in open_ids:
            again = Accepted(request_id=rid, via=AcceptedVia.RECONCILE)
            producer.send(topics.ACCEPTED, key=rid.encode(), value=dump(again))
        if lost_since is not None:
            responses = ledger.unpublish(lost_since, utcnow() - RESEND_RESPONSES_WITHIN)
            for row in ledger.open_changed_since(lost_since):
                held, extended = row.status == RequestStatus.HELD, bool(row.extensions)
                for purpose in rules.notices_owed(row.regulation, held=held, extended=extended):
                    due = NoticeDue(request_id=row.request_id, purpose=purpose)
                    producer.send(topics.NOTICES, key=row.request_id.encode(), value=dump(due))
                    notices += 1
        producer.flush()
    finally:
        producer.close()
    if open_ids:
        ledger.record_reconciled(len(open_ids))
    return Reconciled(len(open_ids), drift, responses, notices)
