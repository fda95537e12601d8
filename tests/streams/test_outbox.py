"""A response the ledger thinks unsent is looked for on ``dsr.responses`` before it is
sent again: on the embedded broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaProducer

from streams import topics
from streams.context import Outgoing
from streams.outbox import already_sent
from tests.connectors.fixtures import bootstrap  # noqa: F401


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
