"""Decisions: an operator's decision on an open request (a deadline extension)."""

from __future__ import annotations

import logging

from services import rules
from services.signing import Headers
from streams.agents.intake import Rejection, parse, reject
from streams.context import Outgoing, Pipeline
from streams.records import DecisionEvent

log = logging.getLogger("dsr.decisions")

WHY_NOT = {
    "unknown_request": "the ledger has no such request",
    "request_closed": "the request has already been answered",
    "extension_not_available": "the regulation allows no extension",
    "already_extended": "the request's one extension has been used",
}


def handle_decision(ctx: Pipeline, raw: bytes, headers: Headers = None) -> list[Outgoing]:
    try:
        decision = parse(raw, ctx.keyring, headers, DecisionEvent)
    except Rejection as rej:
        return reject(ctx, raw, rej, stage="decisions")
    row = ctx.ledger.request(decision.request_id)
    extension = rules.policy_for(row.regulation).extension if row else None
    outcome, deadline = ctx.ledger.extend(
        decision.request_id, decision.reason, decision.decided_by, extension
    )
    if outcome != "extended":
        refused = Rejection(outcome, [{"msg": WHY_NOT[outcome]}])
        return reject(ctx, raw, refused, stage="decisions")
    log.info(
        "deadline extended",
        extra={
            "request_id": decision.request_id,
            "stage": "decisions",
            "deadline": deadline.isoformat() if deadline else None,
        },
    )
    return []
