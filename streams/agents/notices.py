"""Notices: tell the principal about every decision, once.

Where a handler records something the principal must be told, it also returns a
``dsr.notices`` message naming the request and the notice's purpose (``due()``):

- aggregation, when it records a response (``finish``): ``response``;
- decisions, when an extension is recorded: ``extension``;
- intake, when a request is held: ``hold``; and when a CCPA request is recorded:
  ``acknowledgement``.

The notices agent (``handle_notices``, a batch at a time) then builds each notice from
what the ledger recorded, skips it if the audit trail already has it (``notice_reads``,
by notice id), sends it in a thread, and audits the batch's in one transaction. Why
nothing is lost or sent twice:

- The ``dsr.notices`` message is sent and acknowledged by the broker before the
  handler's input is committed, and, for a response, before the response is marked
  published; a crash before then replays the input (or the sweeper re-sends the
  unpublished response), and the message is produced again.
- The handlers produce it again whenever they see the same state (a redelivered
  request that is still held, a repeated extension), and the audit check makes the
  extra messages no-ops.
- One partition, and so one consumer, handles all of a request's notices in order.
- A crash after sending and before the ``notified`` rows are written sends those
  notices once more when the messages are redelivered (as does a batch whose audit
  failed, handled again one notice at a time). A notice's Message-ID is derived from
  its id, so the repeat is recognisable, and the outbox file is written only once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence

from pydantic import ValidationError

from services import rules
from services.delivery.handover import HOLD_BY_POST, handover
from services.delivery.package import build_hold_letter
from services.ledger import Action, as_utc
from services.ledger.models import Request, RequestStatus, Response
from services.notify import Notice, Notifier, Purpose, Receipt, compose
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
    return [due(event.request_id, p) for p in rules.notices_owed(event.regulation, held=held)]


async def handle_notice(
    ctx: Pipeline, notifier: Notifier, raw: bytes, contact: str
) -> list[Outgoing]:
    """Send the notice ``raw`` asks for, unless it was sent already; audit it."""
    return await handle_notices(ctx, notifier, [raw], contact)


async def handle_notices(
    ctx: Pipeline, notifier: Notifier, raws: Sequence[bytes], contact: str
) -> list[Outgoing]:
    """Send the notices ``raws`` ask for, but those sent already, and audit them in one
    transaction. Each request's notices are sent in order, and different requests' side
    by side (a notice can take an SMTP server's round trips). If one cannot be sent, the
    others are audited first, then its error is raised."""
    by_request: dict[str, list[Notice]] = defaultdict(list)
    for notice in prepare_many(ctx, raws, contact):
        by_request[notice.request_id].append(notice)
    outcomes = await asyncio.gather(*(_send_in_order(notifier, n) for n in by_request.values()))
    sent = [(n, r) for out in outcomes for n, r in out if isinstance(r, Receipt)]
    if sent:
        ctx.ledger.audit_many([_notified(n, r) for n, r in sent])
    for notice, receipt in sent:
        log.info(
            "notice sent",
            extra={
                "request_id": notice.request_id,
                "stage": "notices",
                "purpose": notice.purpose,
                "channel": receipt.channel,
            },
        )
    failed = [r for out in outcomes for _, r in out if isinstance(r, Exception)]
    if failed:
        raise failed[0]
    return []


async def _send_in_order(
    notifier: Notifier, notices: list[Notice]
) -> list[tuple[Notice, Receipt | Exception]]:
    """Each notice sent in turn (in a thread), with its receipt or what stopped it."""
    out: list[tuple[Notice, Receipt | Exception]] = []
    for notice in notices:
        try:
            out.append((notice, await asyncio.to_thread(notifier.send, notice)))
        except Exception as exc:  # noqa: BLE001 - the others are still sent and audited
            out.append((notice, exc))
    return out


def _notified(notice: Notice, receipt: Receipt) -> tuple[str, str, Action, dict[str, object]]:
    """The audit entry of a notice sent."""
    detail = {
        "notice_id": notice.id,
        "purpose": notice.purpose,
        "revision": notice.revision,
        "channel": receipt.channel,
        "addressed": receipt.addressed,
        **notice.facts,
    }
    return notice.request_id, ACTOR, Action.NOTIFIED, detail


def prepare(ctx: Pipeline, raw: bytes, contact: str) -> Notice | None:
    """The notice ``raw`` asks for, built from the ledger; None when there is nothing
    (left) to send."""
    return next(iter(prepare_many(ctx, [raw], contact)), None)


def prepare_many(ctx: Pipeline, raws: Sequence[bytes], contact: str) -> list[Notice]:
    """The notices ``raws`` ask for, built from the ledger, in their order: each once,
    and none that was sent already. The ledger is read once for them all, at one moment."""
    dues = [_parse(raw) for raw in raws]
    read = ctx.ledger.notice_reads(
        [d.request_id for d in dues], [d.request_id for d in dues if d.purpose == "response"]
    )
    notices: dict[tuple[str, str], Notice] = {}
    for due in dues:
        row = read.requests.get(due.request_id)
        notice = build(ctx, row, due.purpose, contact, read.responses) if row else None
        if notice is not None and (notice.request_id, notice.id) not in read.sent:
            notices.setdefault((notice.request_id, notice.id), notice)
    return list(notices.values())


def _parse(raw: bytes) -> NoticeDue:
    try:
        return NoticeDue.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        why = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        raise InvalidNotice("invalid notice message", why[:500]) from None


def build(
    ctx: Pipeline,
    row: Request,
    purpose: Purpose,
    contact: str,
    responses: Mapping[str, Response],
) -> Notice | None:
    """The notice of ``purpose`` for ``row``; None when there is nothing to tell.
    ``responses`` holds the stored responses by request id (``Ledger.responses``)."""
    event = ctx.ledger.request_event(row)
    if purpose == "response":
        stored = responses.get(row.request_id)
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
