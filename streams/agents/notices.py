"""Notices: tell the principal about every decision, once.

Where a handler records something the principal must be told, it also returns a
``dsr.notices`` message naming the request and the notice's purpose (``due()``):

- aggregation, when it records a response (``finish``): ``response``;
- decisions, when an extension is recorded: ``extension``;
- intake, when a request is held: ``hold``; and when a CCPA request is recorded:
  ``acknowledgement``.

The notices agent (``handle_notice``) then builds the notice from what the ledger
recorded, skips it if the audit trail already has it (``notified``, by notice id),
sends it in a thread, and audits it. Why nothing is lost or sent twice:

- The ``dsr.notices`` message is sent and acknowledged by the broker before the
  handler's input is committed, and, for a response, before the response is marked
  published; a crash before then replays the input (or the sweeper re-sends the
  unpublished response), and the message is produced again.
- The handlers produce it again whenever they see the same state (a redelivered
  request that is still held, a repeated extension), and the audit check makes the
  extra messages no-ops.
- One partition, and so one consumer, handles all of a request's notices in order.
- A crash after sending and before the ``notified`` row is written sends that notice
  once more when the message is redelivered. Its Message-ID is derived from the notice
  id, so the repeat is recognisable, and the outbox file is written only once.
"""

from __future__ import annotations

import asyncio
import logging

from pydantic import ValidationError

from services import rules
from services.delivery.handover import HOLD_BY_POST, handover
from services.delivery.package import build_hold_letter
from services.ledger import Action, as_utc
from services.ledger.models import Request, RequestStatus
from services.notify import Notice, Notifier, Purpose, compose
from streams import topics
from streams.agents.decode import PoisonEvent
from streams.context import Outgoing, Pipeline
from streams.records import Extension, NoticeDue, RequestEvent, ResponseEvent, dump

log = logging.getLogger("dsr.notices")

ACTOR = "notifier"


class InvalidNotice(PoisonEvent):
    """A ``dsr.notices`` message that names no request or no known purpose. The fault is
    the message's, not the request's: it is dead-lettered, and the request it is keyed
    by is not parked."""


def due(request_id: str, purpose: Purpose) -> Outgoing:
    """The message that asks the notices agent to send a notice of ``purpose``."""
    due = NoticeDue(request_id=request_id, purpose=purpose)
    return Outgoing(topics.NOTICES, request_id.encode(), dump(due))


def on_admission(event: RequestEvent, held: bool) -> list[Outgoing]:
    """What intake owes the principal once a request is recorded."""
    out = []
    if rules.policy_for(event.regulation).acknowledge_within_business_days is not None:
        out.append(due(event.request_id, "acknowledgement"))
    if held:
        out.append(due(event.request_id, "hold"))
    return out


async def handle_notice(
    ctx: Pipeline, notifier: Notifier, raw: bytes, contact: str
) -> list[Outgoing]:
    """Send the notice ``raw`` asks for, unless it was sent already; audit it."""
    notice = prepare(ctx, raw, contact)
    if notice is None:
        return []
    receipt = await asyncio.to_thread(notifier.send, notice)
    ctx.ledger.audit(
        notice.request_id,
        ACTOR,
        Action.NOTIFIED,
        notice_id=notice.id,
        purpose=notice.purpose,
        revision=notice.revision,
        channel=receipt.channel,
        addressed=receipt.addressed,
        **notice.facts,
    )
    log.info(
        "notice sent",
        extra={
            "request_id": notice.request_id,
            "stage": "notices",
            "purpose": notice.purpose,
            "channel": receipt.channel,
        },
    )
    return []


def prepare(ctx: Pipeline, raw: bytes, contact: str) -> Notice | None:
    """The notice ``raw`` asks for, built from the ledger; None when there is nothing
    (left) to send."""
    try:
        due = NoticeDue.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        why = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        raise InvalidNotice("invalid notice message", why[:500]) from None
    row = ctx.ledger.request(due.request_id)
    if row is None:
        return None
    notice = build(ctx, row, due.purpose, contact)
    if notice is None or already_notified(ctx, notice):
        return None
    return notice


def build(ctx: Pipeline, row: Request, purpose: Purpose, contact: str) -> Notice | None:
    event = ctx.ledger.request_event(row)
    if purpose == "response":
        stored = ctx.ledger.response(row.request_id)
        if stored is None:  # reopened by a redrive: the next revision will be told
            return None
        response = ResponseEvent.model_validate(stored.body)
        given = handover(ctx.storage, response, ctx.notice_link_ttl)
        return compose.for_response(event, response, contact, ctx.labels, given)
    if purpose == "extension":
        if not row.extensions:
            return None
        extension = Extension.model_validate(row.extensions[-1])
        return compose.for_extension(event, extension, len(row.extensions), contact)
    if purpose == "hold":
        if row.status != RequestStatus.HELD or not row.hold_reason:
            return None  # released or answered since: nothing is needed any more
        holds = ctx.ledger.audited_at(row.request_id, Action.HOLD)
        revision = max(1, len(holds))
        at = holds[-1] if holds else as_utc(row.updated_at)
        written = None
        if event.delivery.method == "written":  # the same, by post
            build_hold_letter(ctx.storage, event, row.hold_reason, revision, at, ctx.letterhead)
            written = HOLD_BY_POST
        return compose.for_hold(event, row.hold_reason, revision, at, contact, written)
    return compose.for_acknowledgement(
        event, as_utc(row.deadline_at), as_utc(row.created_at), contact
    )


def already_notified(ctx: Pipeline, notice: Notice) -> bool:
    return ctx.ledger.notified(notice.request_id, notice.id)
