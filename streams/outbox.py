"""The ledger is the responses' outbox; this keeps a crash from sending one twice.

A response is recorded in the ledger when its request completes, sent to
``dsr.responses``, and then marked published. A worker killed between the send
and the mark leaves a response the ledger thinks unsent although the topic has
it. Before such a response is sent again (``Outgoing.resend``: a redelivered
result, or the sweeper), the worker reads what the topic received since the
response was made and drops those already there, marking them published. A
response is matched on ``(request_id, revision)``, so the next revision after
an operator's redrive is still sent. The read starts at the first message stamped
since a little before the response completed (``offsets_for_times``; the embedded
broker answers with an earlier offset than Kafka would, so it reads more, never less).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from services.client import read_all
from streams import topics
from streams.context import Outgoing

#: How far before a response's completion time the topic is read: the broker stamps
#: a message with the producer's clock, which may lag the ledger's a little.
CLOCK_SLACK = timedelta(minutes=5)


def already_sent(bootstrap: str, resends: list[Outgoing]) -> set[str]:
    """The request ids of ``resends`` (responses) that ``dsr.responses`` already holds."""
    bodies = [json.loads(o.value) for o in resends if o.topic == topics.RESPONSES]
    if not bodies:
        return set()
    wanted = {_identity(b) for b in bodies}
    since = min(datetime.fromisoformat(b["completed_at"]) for b in bodies) - CLOCK_SLACK
    on_topic = set()
    for record in read_all(bootstrap, [topics.RESPONSES], since=since):
        try:
            on_topic.add(_identity(json.loads(record.value)))
        except (ValueError, KeyError, TypeError):
            continue  # not a response this pipeline wrote
    return {request_id for request_id, _ in wanted & on_topic}


def _identity(body: dict[str, object]) -> tuple[str, int]:
    return str(body["request_id"]), int(str(body["revision"]))
