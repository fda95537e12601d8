"""What fan-out reads from ``dsr.accepted``: the typed ``Accepted`` message, or a bare
request id as sent before it existed; anything else is a poison event."""

from __future__ import annotations

import pytest

from streams.agents.decode import PoisonEvent, accepted
from streams.records import Accepted, AcceptedVia, dump


@pytest.mark.parametrize("via", list(AcceptedVia))
def test_a_typed_message_names_its_request(via: AcceptedVia) -> None:
    assert accepted(dump(Accepted(request_id="req-1", via=via))) == "req-1"


def test_a_bare_request_id_sent_before_the_record_is_still_read() -> None:
    assert accepted(b"req-2") == "req-2"
    assert Accepted.read(b"req-2").via is AcceptedVia.INTAKE


@pytest.mark.parametrize(
    "raw",
    [
        b'{"request_id": "req-3"}',  # who sent it is missing
        b'{"request_id": "req-3", "via": "someone"}',
        b'{"request_id": "../etc", "via": "intake"}',  # not a request id
        b"not an id at all",
        b"\xff\xfe",
        b"",
    ],
)
def test_anything_else_is_a_poison_event(raw: bytes) -> None:
    with pytest.raises(PoisonEvent, match="invalid accepted message"):
        accepted(raw)
