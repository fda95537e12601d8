"""A response the ledger thinks unsent is sent again only by whoever takes its lease,
and only when ``dsr.responses`` does not have it already: on the embedded broker."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaProducer
from sqlalchemy import update

from services.ledger import Ledger
from services.ledger.models import Response
from streams import topics
from streams.context import Outgoing
from streams.outbox import ResponseSends, already_sent
from tests.connectors.fixtures import bootstrap  # noqa: F401
from tests.fixtures.ledger_rows import finish, ledger  # noqa: F401


def _response(request_id: str, revision: int = 1, **over: Any) -> Outgoing:
    body = {
        "request_id": request_id,
        "revision": revision,
        "completed_at": datetime.now(UTC).isoformat(),
        "status": "completed",
        **over,
    }
    return Outgoing(topics.RESPONSES, request_id.encode(), json.dumps(body).encode(), True)


def test_only_responses_already_on_the_topic_are_found(bootstrap: str) -> None:  # noqa: F811
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for o in [_response("ob-1"), _response("ob-2", revision=1)]:
        producer.send(o.topic, key=o.key, value=o.value)
    producer.send(topics.RESPONSES, key=b"junk", value=b"not json")
    producer.flush()
    producer.close()
    asked = [
        _response("ob-1"),  # on the topic
        _response("ob-2", revision=2),  # revision 1 is there, 2 is not: a redrive's answer
        _response("ob-3"),  # never sent
    ]
    assert already_sent(bootstrap, asked) == {"ob-1"}


def test_a_response_made_long_ago_is_found_by_its_completion_time(
    bootstrap: str,  # noqa: F811
) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    old = _response("ob-late", completed_at=(datetime.now(UTC) - timedelta(hours=2)).isoformat())
    producer.send(old.topic, key=old.key, value=old.value)
    producer.flush()
    producer.close()
    assert already_sent(bootstrap, [old]) == {"ob-late"}
    assert already_sent(bootstrap, []) == set()


def admit(outbox: ResponseSends, ledger: Ledger, outgoing: list[Outgoing]) -> list[Outgoing]:  # noqa: F811
    return asyncio.run(outbox.admit(ledger, outgoing))


def _completed(ledger: Ledger, request_id: str) -> Outgoing:  # noqa: F811
    """A completed request whose response the ledger holds unsent, leased to its sender."""
    finish(ledger, request_id, {"crm": "ok"}, 0.01)
    response = _response(request_id)
    assert ledger.complete(request_id, "completed", json.loads(response.value), 12)
    return response


def _lease_ends(ledger: Ledger, request_id: str) -> None:  # noqa: F811
    with ledger.session() as s:
        s.execute(
            update(Response)
            .where(Response.request_id == request_id)
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )


def test_a_response_its_sender_holds_is_not_sent_again(
    bootstrap: str,  # noqa: F811
    ledger: Ledger,  # noqa: F811
) -> None:
    held, notice = _completed(ledger, "ob-held"), Outgoing(topics.NOTICES, b"ob-held", b"{}")
    sender, other = ResponseSends(bootstrap), ResponseSends(bootstrap)
    # a redelivered result elsewhere, while the completing worker is still sending it
    assert admit(other, ledger, [held, notice]) == [notice]
    with sender.holding([held, notice]):
        _lease_ends(ledger, "ob-held")  # however long the broker holds the send...
        assert sender.renew(ledger) == 1  # ...its sender keeps the lease
        assert admit(other, ledger, [held]) == []
    assert sender.renew(ledger) == 0  # the send is over: nothing left to keep
    assert ledger.unpublished_responses(unleased=True) == []


def test_a_dead_senders_response_is_sent_once_by_whoever_takes_it(
    bootstrap: str,  # noqa: F811
    ledger: Ledger,  # noqa: F811
) -> None:
    lost, landed = _completed(ledger, "ob-lost"), _completed(ledger, "ob-landed")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send(landed.topic, key=landed.key, value=landed.value)  # sent, never marked
    producer.flush()
    producer.close()
    for request_id in ("ob-lost", "ob-landed"):
        _lease_ends(ledger, request_id)  # the sender died
    sweeper, redelivery = ResponseSends(bootstrap), ResponseSends(bootstrap)
    assert admit(sweeper, ledger, [lost, landed]) == [lost]
    assert admit(redelivery, ledger, [lost]) == []  # the sweeper holds it now
    landed_row = ledger.response("ob-landed")
    assert landed_row is not None and landed_row.published_at is not None
