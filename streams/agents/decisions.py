"""Decisions: an operator's decision on an open request (an extension, a refusal).

With signatures required, only a key allowed decisions may send one, and the decision is
recorded as that key's owner's (``services.signing``): the event's ``decided_by`` is
ignored. Every audit row of a decision, applied or rejected, names its key id."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from services import rules
from services.ledger import Decided
from services.parsing import Rejection, not_permitted, parse_signed
from services.signing import Headers
from streams.agents import notices
from streams.agents.intake import message_id, permissions, reject
from streams.agents.respond import finish
from streams.context import Outgoing, Pipeline
from streams.records import DecisionEvent, RefusedPart

log = logging.getLogger("dsr.decisions")

#: Why a decision cannot apply: what the ledger said (``Decided``), or what this agent
#: checks first (the ground, the system).
WHY_NOT = {
    Decided.UNKNOWN_REQUEST: "the ledger has no such request",
    Decided.REQUEST_CLOSED: "the request has already been answered",
    Decided.EXTENSION_NOT_AVAILABLE: "the regulation allows no extension",
    Decided.ALREADY_EXTENDED: "the request's one extension has been used",
    Decided.ALREADY_FANNED_OUT: "the request is being carried out; refuse before fan-out",
    Decided.FIELDS_NOT_REFUSABLE: "fields may be refused only in a disclosure of data or records",
    "unknown_ground": "the ground is not a refusal code of the request's regulation",
    "unknown_system": "the data map has no such system",
}


def handle_decision(
    ctx: Pipeline, raw: bytes, headers: Headers = None, place: str | None = None
) -> list[Outgoing]:
    """A decision event (read at ``place``): applied, or rejected with why."""
    try:
        decision, key_id = parse_signed(raw, ctx.keyring, headers, DecisionEvent)
    except Rejection as rej:
        return reject(ctx, raw, rej, stage="decisions", place=place, key_id=rej.key_id)
    may = permissions(ctx, key_id)
    if may is not None and not may.decisions:
        refused = not_permitted(key_id, "decisions")
        return reject(
            ctx, raw, refused, "decisions", decision.request_id, False, place, key_id=key_id
        )
    decided_by = may.owner if may is not None else decision.decided_by
    row = ctx.ledger.request(decision.request_id)
    if row is None:
        return _cannot(ctx, (raw, place), Decided.UNKNOWN_REQUEST, key_id)
    policy = rules.policy_for(row.regulation)
    if decision.decision == "refusal":
        return _refuse(ctx, (raw, place), decision, policy.refusal_codes, decided_by, key_id)
    outcome, deadline = ctx.ledger.extend(
        decision.request_id,
        decision.reason,
        decided_by,
        policy.extension,
        key_id,
        message_id(raw, place),
    )
    if outcome is Decided.REDELIVERED:  # applied before a crash: its notice may be owed
        return [notices.due(decision.request_id, "extension")]
    if outcome is Decided.ALREADY_EXTENDED:  # perhaps by this decision sent again
        return [
            *_cannot(ctx, (raw, place), outcome, key_id),
            notices.due(decision.request_id, "extension"),
        ]
    if outcome is not Decided.EXTENDED:
        return _cannot(ctx, (raw, place), outcome, key_id)
    log.info(
        "deadline extended",
        extra={
            "request_id": decision.request_id,
            "stage": "decisions",
            "deadline": deadline.isoformat() if deadline else None,
        },
    )
    return [notices.due(decision.request_id, "extension")]


def _refuse(
    ctx: Pipeline,
    read: tuple[bytes, str | None],
    decision: DecisionEvent,
    codes: Mapping[str, object],
    decided_by: str,
    key_id: str | None,
) -> list[Outgoing]:
    """Refuse the request on its ground, or only the part it names (a system, fields)."""
    ground = decision.ground or ""
    if ground not in codes:
        return _cannot(ctx, read, "unknown_ground", key_id, accepted=sorted(codes))
    if decision.system is not None and decision.system not in ctx.datamap.systems:
        return _cannot(ctx, read, "unknown_system", key_id, accepted=sorted(ctx.datamap.systems))
    if decision.in_part:
        part = RefusedPart(
            system=decision.system,
            fields=decision.fields,
            ground=ground,
            reason=decision.reason,
            decided_by=decided_by,
        )
        outcome, done = (
            ctx.ledger.refuse_part(decision.request_id, part, key_id, message_id(*read)),
            Decided.REFUSED_IN_PART,
        )
    else:
        outcome = ctx.ledger.refuse(
            decision.request_id, ground, decision.reason, decided_by, key_id, message_id(*read)
        )
        done = Decided.REFUSED
    if outcome is Decided.REDELIVERED:  # applied before a crash: its response may be owed
        return [] if decision.in_part else finish(ctx, decision.request_id)
    if outcome is not done:
        return _cannot(ctx, read, outcome, key_id)
    log.info(
        "request refused in part" if decision.in_part else "request refused",
        extra={"request_id": decision.request_id, "stage": "decisions", "reason_code": ground},
    )
    # a part refused leaves the rest going on; a whole refusal is answered now
    return [] if decision.in_part else finish(ctx, decision.request_id)


def _cannot(
    ctx: Pipeline,
    read: tuple[bytes, str | None],
    outcome: str,
    key_id: str | None,
    accepted: list[str] | None = None,
) -> list[Outgoing]:
    """The decision (``read``: its event, and where it was read) cannot apply: rejected,
    with why (and the grounds that would be accepted, for a ground that is not), and
    audited with its key."""
    error = {"msg": WHY_NOT[outcome]}
    if accepted:
        where = "system" if outcome == "unknown_system" else "ground"
        error = {"loc": where, "msg": f"{error['msg']}; accepted: {', '.join(accepted)}"}
    rej = Rejection(outcome, [error])
    raw, place = read
    return reject(ctx, raw, rej, "decisions", place=place, key_id=key_id)
