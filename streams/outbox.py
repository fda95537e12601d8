"""The ledger is the responses' outbox; this keeps a crash, or a slow broker, from
sending one twice.

A response is recorded in the ledger when its request completes, sent to
``dsr.responses``, and then marked published. Two things can make it look unsent:

- **Its sender is still sending.** A broker that died holds a send for as long as
  its partitions take to get a new leader, seconds on Apache Kafka. The completing
  worker holds the response's lease (``Ledger.claim_responses``) and renews it for as
  long as its send is unanswered (``ResponseSends.renew``); no one else sends it meanwhile.
- **Its sender died** between the send and the mark. Its lease runs out. Before such a
  response is sent again (``Outgoing.resend``: a redelivered result, or the sweeper),
  the worker takes the lease, reads what the topic received since the response was
  made and drops those already there, marking them published.

A response is matched on ``(request_id, revision)``, so the next revision after
an operator's redrive is still sent. The read starts at the first message stamped
since a little before the response completed (``offsets_for_times``; the embedded
broker answers with an earlier offset than Kafka would, so it reads more, never less).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from services.client import read_all
from services.ledger import Ledger
from streams import topics
from streams.context import Outgoing

log = logging.getLogger("dsr.outbox")

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


class ResponseSends:
    """The responses one worker is sending, and which it may send: the worker's side of the
    ledger's outbox (``services.ledger.outbox``)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        #: request ids of the responses this worker is sending (a count: sends overlap)
        self.sending: Counter[str] = Counter()

    async def admit(self, ledger: Ledger, outgoing: list[Outgoing]) -> list[Outgoing]:
        """``outgoing`` without the re-sent responses that another sender holds, or that
        the topic has already (those are marked published)."""
        resends = [_id(o) for o in outgoing if o.resend and o.topic == topics.RESPONSES]
        if not resends:
            return outgoing
        taken = set(ledger.claim_responses(resends))
        if len(taken) < len(resends):
            log.info(
                "response being sent by another worker",
                extra={"stage": "outbox", "count": len(resends) - len(taken)},
            )
        mine = [o for o in outgoing if o.resend and _id(o) in taken]
        sent: set[str] = set()
        if mine:  # read in a thread: the consumer blocks
            loop = asyncio.get_running_loop()
            sent = await loop.run_in_executor(None, already_sent, self.bootstrap, mine)
        if sent:
            ledger.mark_published(sorted(sent))
            log.info("response already sent", extra={"stage": "outbox", "count": len(sent)})
        return [o for o in outgoing if not o.resend or (_id(o) in taken and _id(o) not in sent)]

    @contextmanager
    def holding(self, outgoing: list[Outgoing]) -> Iterator[None]:
        """While the responses among ``outgoing`` are being sent, ``renew`` keeps them."""
        ids = Counter(_id(o) for o in outgoing if o.topic == topics.RESPONSES)
        self.sending.update(ids)
        try:
            yield
        finally:
            self.sending.subtract(ids)
            self.sending = +self.sending

    def renew(self, ledger: Ledger) -> int:
        """Extend the leases of the responses still being sent; how many."""
        return ledger.renew_leases(sorted(self.sending)) if self.sending else 0


def _id(o: Outgoing) -> str:
    return (o.key or b"").decode()
