"""Intake: validate a request event, apply the rules, record it, release it to fan-out."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from services import rules
from services.faults import crash_point
from services.ledger import Admission, Admitted, Arrival, RequestStatus
from services.parsing import Rejection, not_permitted, parse_signed
from services.rules import my_number
from services.signing import Headers, Permissions
from streams import failures, topics, transient
from streams.agents import notices
from streams.agents.respond import finish
from streams.context import Outgoing, Pipeline
from streams.records import Accepted, AcceptedVia, RejectedEvent, RequestEvent, dump

log = logging.getLogger("dsr.intake")


def permissions(ctx: Pipeline, key_id: str | None) -> Permissions | None:
    """What ``key_id`` may send; None when signatures are off (anything goes)."""
    if ctx.keyring is None or key_id is None:
        return None
    return ctx.keyring.permissions(key_id)


def _request_id_of(raw: bytes) -> str | None:
    try:
        value = json.loads(raw).get("request_id")
    except Exception:  # noqa: BLE001 - any failure means "no usable id"
        return None
    return value[:128] if isinstance(value, str) else None


def reject(
    ctx: Pipeline,
    raw: bytes,
    rej: Rejection,
    stage: str = "intake",
    request_id: str | None = None,
    echo: bool = True,
    place: str | None = None,
    **audit: Any,
) -> list[Outgoing]:
    """Record a rejected event in the ledger (once for its message, at ``place``)
    and send its digest, with the reason, to ``dsr.requests.rejected``
    (``rejected_event``): the event sealed too unless ``echo`` is False. ``audit`` goes
    into the ledger's audit row."""
    request_id = request_id or _request_id_of(raw)
    ctx.ledger.record_rejected(rej.reason_code, rej.errors, raw, request_id, place, **audit)
    log.warning(
        "event rejected",
        extra={"request_id": request_id, "stage": stage, "reason_code": rej.reason_code},
    )
    rejected = rejected_event(
        ctx, raw, rej.reason_code, rej.errors, request_id, audit.get("key_id"), keep=echo
    )
    key = request_id.encode() if request_id else None
    return [Outgoing(topics.REJECTED, key, dump(rejected), record=rejected)]


def rejected_event(
    ctx: Pipeline,
    raw: bytes,
    reason_code: str,
    errors: list[dict[str, Any]],
    request_id: str | None = None,
    key_id: str | None = None,
    *,
    keep: bool = True,
    kept: bytes | None = None,
) -> RejectedEvent:
    """What ``dsr.requests.rejected`` carries: the digest of ``raw``, the reason and the
    failing fields, and ``kept`` (default ``raw``) only sealed to the pipeline's public
    key, when ``keep`` and the worker holds the pipeline keys. Never the event in clear."""
    sealed = None
    if keep and ctx.sealer is not None and ctx.sealer.pipeline is not None:
        sealed = ctx.sealer.seal_to_pipeline("RejectedEvent", raw if kept is None else kept)
    return RejectedEvent(
        reason_code=reason_code,  # type: ignore[arg-type]
        errors=errors,
        request_id=request_id,
        digest=hashlib.sha256(raw).hexdigest(),
        sealed_raw=sealed,
        key_id=key_id,
    )


@dataclass(frozen=True)
class Refused:
    """An event refused before the ledger: recorded as rejected when answered."""

    raw: bytes
    rejection: Rejection
    request_id: str | None = None
    echo: bool = True
    key_id: str | None = None
    #: Where its message was read (``reject``).
    place: str | None = None

    def answer(self, ctx: Pipeline, admission: Admission | None = None) -> list[Outgoing]:
        return reject(
            ctx,
            self.raw,
            self.rejection,
            request_id=self.request_id,
            echo=self.echo,
            place=self.place,
            key_id=self.key_id,
        )


@dataclass(frozen=True)
class Valid:
    """A valid event, with the rules' decision, to admit (``admit``)."""

    raw: bytes
    arrival: Arrival
    #: Where its message was read (``reject``).
    place: str | None = None

    @property
    def request_id(self) -> str:
        return self.arrival.event.request_id

    def answer(self, ctx: Pipeline, admission: Admission | None) -> list[Outgoing]:
        """What intake sends once the ledger has admitted the event as ``admission``."""
        assert admission is not None
        event, key_id = self.arrival.event, self.arrival.key_id
        if admission.outcome is Admitted.NOT_PERMITTED:
            denied = not_permitted(key_id, "releases of held requests")
            refused = Refused(self.raw, denied, event.request_id, False, key_id, self.place)
            return refused.answer(ctx)
        if admission.outcome is Admitted.CONFLICT:
            return _conflict(ctx, self, admission.conflicts)
        crash_point("intake.recorded")
        log.info(
            "request %s",
            admission.outcome,
            extra={
                "request_id": event.request_id,
                "stage": "intake",
                "kind": event.kind,
                "status": admission.status,
                "reason_code": admission.hold_reason,
            },
        )
        key = event.request_id.encode()
        # Notices are produced again on a redelivery; the notices agent sends each once.
        told = notices.on_admission(event, held=admission.status == RequestStatus.HELD)
        # The admission that accepts a request sends it to fan-out, and so does its
        # message read again (a crash before the batch was sent: fan-out plans what is
        # missing and re-sends what is pending). A re-send from the client never does.
        if _to_fan_out(admission):
            accepted = Accepted(request_id=event.request_id, via=AcceptedVia.INTAKE)
            return [*told, Outgoing(topics.ACCEPTED, key, dump(accepted))]
        if admission.status == RequestStatus.REFUSED and admission.outcome is Admitted.NEW:
            return [*told, *finish(ctx, event.request_id)]
        return told


def _to_fan_out(admission: Admission) -> bool:
    if admission.outcome in (Admitted.NEW, Admitted.RELEASED):
        return admission.status == RequestStatus.ACCEPTED
    return admission.outcome is Admitted.REDELIVERED and admission.status in (
        RequestStatus.ACCEPTED,
        RequestStatus.FANNED_OUT,
    )


def handle_request(
    ctx: Pipeline, raw: bytes, headers: Headers = None, place: str | None = None
) -> list[Outgoing]:
    """One request event: checked, admitted, answered (``check``, ``admit``, ``answer``)."""
    checked = check(ctx, raw, headers, place)
    [admission] = admit(ctx, [checked])
    return checked.answer(ctx, admission)


#: An event's place in its batch, and what ``check`` made of it.
Checked = tuple[int, Refused | Valid]


def handle_batch(
    ctx: Pipeline,
    events: Sequence[tuple[bytes, Headers, str | None]],
    fail: Callable[[int, Exception], list[Outgoing]],
) -> list[Outgoing]:
    """A batch of request events (each with its headers, and where it was read): each
    checked, then, a run of
    them at a time (``_runs``), the valid ones admitted in one ledger transaction and
    each answered on its own. An event that cannot be handled goes to ``fail``, with its
    place in ``events``, and the others go on: a run's admissions are committed, and an
    event handled again would only be a duplicate, which sends nothing on."""
    outgoing: list[Outgoing] = []
    checked: list[Checked] = []
    for i, (raw, headers, place) in enumerate(events):
        try:
            checked.append((i, check(ctx, raw, headers, place)))
        except Exception as exc:  # noqa: BLE001 - only this event fails
            outgoing += fail(i, exc)
    for run in _runs(checked):
        outgoing += _handle_run(ctx, run, fail)
    return outgoing


def _handle_run(
    ctx: Pipeline, run: list[Checked], fail: Callable[[int, Exception], list[Outgoing]]
) -> list[Outgoing]:
    """``run`` admitted in one transaction, then each answered on its own; if the
    admission fails, each event is admitted alone (``failures.each_alone``)."""

    def admitted(batch: Sequence[Checked]) -> list[Outgoing]:
        admissions = transient.again(admit)(ctx, [c for _, c in batch])
        outgoing: list[Outgoing] = []
        for (i, answer), admission in zip(batch, admissions, strict=True):
            try:
                outgoing += transient.again(answer.answer)(ctx, admission)
            except Exception as exc:  # noqa: BLE001 - only this event fails
                outgoing += fail(i, exc)
        return outgoing

    def failed(batch: Sequence[Checked], exc: Exception) -> list[Outgoing]:
        return [o for i, _ in batch for o in fail(i, exc)]

    return failures.each_alone(run, admitted, failed)


def _runs(checked: Sequence[Checked]) -> Iterator[list[Checked]]:
    """``checked`` in runs of events of distinct requests, in order. A run's admissions
    are recorded before its rejections; with one event a request in it, every request's
    audit trail is in the order its events came, as when each is handled alone. A burst
    of new requests is one run."""
    run: list[Checked] = []
    seen: set[str] = set()
    for i, c in checked:
        request_id = c.request_id if isinstance(c, Valid) else c.request_id or _request_id_of(c.raw)
        if request_id in seen:
            yield run
            run, seen = [], set()
        run.append((i, c))
        if request_id is not None:
            seen.add(request_id)
    if run:
        yield run


def check(
    ctx: Pipeline, raw: bytes, headers: Headers = None, place: str | None = None
) -> Refused | Valid:
    """``raw`` (read at ``place``) checked (its signature, schema, permissions,
    grounds) and decided by the rules; nothing is recorded yet."""
    try:
        event, key_id = parse_signed(raw, ctx.keyring, headers, RequestEvent, ctx.sealer)
    except Rejection as rej:
        return Refused(raw, rej, key_id=rej.key_id, place=place)
    if found := my_number.found_in(event.model_dump(mode="json")):
        # Neither kept nor echoed, sealed or not: only the event's digest is recorded.
        msg = "a My Number (個人番号) may not be sent, as proof of identity or otherwise"
        refused = Rejection("my_number_not_accepted", [{"loc": loc, "msg": msg} for loc in found])
        return Refused(raw, refused, event.request_id, False, key_id, place)
    may = permissions(ctx, key_id)
    if may is not None and not may.may_request(event.kind):
        denied = not_permitted(key_id, f"{event.kind} requests")
        return Refused(raw, denied, event.request_id, False, key_id, place)
    unknown = [code for code, basis in rules.grounds_invoked(event).items() if basis is None]
    if unknown:
        msg = (
            f"not a ground for {event.kind} under {event.regulation.upper()}: "
            f"{', '.join(unknown)}; accepted: {', '.join(rules.accepted_grounds(event))}"
        )
        unknown_ground = Rejection("unknown_ground", [{"loc": "grounds", "msg": msg}])
        return Refused(raw, unknown_ground, key_id=key_id, place=place)
    decision = rules.decide(event)
    arrival = Arrival(
        event,
        decision.action,
        decision.reason_code,
        rules.deadline(event),
        clock_pauses=rules.policy_for(event.regulation).clock_pauses_for_verification,
        key_id=key_id,
        may_release=may is None or may.releases,
        message=message_id(raw, place),
    )
    return Valid(raw, arrival, place)


def message_id(raw: bytes, place: str | None) -> str | None:
    """How the ledger knows ``raw``'s message read again (``Request.deliveries``): its
    digest and where it was read. The same event sent again is another message."""
    return None if place is None else f"{hashlib.sha256(raw).hexdigest()}@{place}"


def admit(ctx: Pipeline, checked: Sequence[Refused | Valid]) -> list[Admission | None]:
    """The valid events among ``checked`` admitted in one ledger transaction: an
    admission each (None for those refused)."""
    valid = [c.arrival for c in checked if isinstance(c, Valid)]
    admitted = iter(ctx.ledger.admit_many(valid) if valid else ())
    return [next(admitted) if isinstance(c, Valid) else None for c in checked]


def _conflict(ctx: Pipeline, valid: Valid, fields: tuple[str, ...]) -> list[Outgoing]:
    """A re-send that would change a recorded request: rejected, naming the fields it
    would change and never their values, nor echoing the event."""
    request_id = valid.request_id
    errors = [
        {"loc": name, "msg": f"differs from request {request_id} as recorded"} for name in fields
    ]
    rej = Rejection("request_id_conflict", errors)
    return reject(
        ctx,
        valid.raw,
        rej,
        request_id=request_id,
        echo=False,
        place=valid.place,
        key_id=valid.arrival.key_id,
        fields=list(fields),
    )
