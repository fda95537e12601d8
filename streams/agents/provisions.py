"""Provision records: validate an Art. 29 / Art. 30 record event and store it once.

A malformed record, one whose ``record_id`` is taken by another record, and a
provision to a recipient the principal has stopped all go to
``dsr.requests.rejected`` with their reason; the worker carries on. A record refused
after parsing goes there in its digest form (``ProvisionEvent.digested``), never with
the identifiers a system may have sent in clear. A record for a system its signing key
may not record (``services.signing.Permissions.provisions``) is rejected
``not_permitted`` and stored nowhere. The store keeps and audits its own refusals in
the transaction that decides them; a malformed event is traced like a malformed
request. Either way, ``rejected_events`` and the audit trail hold a hash of the event,
never its content, once a message: read again, it is refused again but not recorded
again.
"""

from __future__ import annotations

import logging

from services.parsing import Rejection, not_permitted, parse_signed
from services.provisions.records import ProvisionEvent
from services.provisions.store import Message
from services.signing import Headers
from streams import topics
from streams.agents.intake import permissions, reject, rejected_event
from streams.context import Outgoing, Pipeline
from streams.records import dump

log = logging.getLogger("dsr.provisions")


def handle_provision(
    ctx: Pipeline, raw: bytes, headers: Headers = None, place: str | None = None
) -> list[Outgoing]:
    """A provision record's event (read at ``place``): recorded, or rejected with why."""
    try:
        event, key_id = parse_signed(raw, ctx.keyring, headers, ProvisionEvent)
    except Rejection as rej:
        return reject(ctx, raw, rej, stage="provisions", place=place, key_id=rej.key_id)
    may = permissions(ctx, key_id)
    if may is not None and not may.may_provision(event.system):
        denied = not_permitted(key_id, f"provision records of {event.system!r}")
        return reject(ctx, raw, denied, "provisions", echo=False, place=place, key_id=key_id)
    read = Message(raw, place)
    outcome = ctx.ledger.provisions.record(event, via="topic", key_id=key_id, message=read)
    log.info(
        "provision record %s",
        outcome.status,
        extra={"stage": "provisions", "system": event.system, "reason_code": outcome.reason_code},
    )
    if outcome.status != "rejected":
        return []
    refused = rejected_event(
        ctx,
        raw,
        str(outcome.reason_code),
        [{"loc": "record_id", "msg": outcome.message}],
        kept=event.digested().model_dump_json(exclude_none=True).encode(),
    )
    return [Outgoing(topics.REJECTED, event.record_id.encode(), dump(refused), record=refused)]
