"""What each notice says, in Japanese and English, built from what the ledger recorded.

- A **response** (Arts. 32(3), 33(3), 34(3), 35(7)): the request kind, the outcome,
  what each system did, every reason (Art. 36), "no data found" when nothing was held,
  the deadline and any extension, where the package or letter is, and whom to
  complain to.
- An **extension**: why, and the new deadline.
- A **hold**: what is needed before the request can proceed.
- An **acknowledgement** (CCPA regs §7021(a)): the request was received, and when it
  will be answered.
"""

from __future__ import annotations

from datetime import datetime

from services import rules, statements
from services.delivery.contents import TITLES
from services.delivery.labels import Labels
from services.notify.notice import Notice, Purpose, email_address
from services.rules import reasons
from services.rules.policy import add_business_days
from services.rules.sentence import Sentence
from streams.records import Extension, RequestEvent, ResponseEvent


def for_response(
    event: RequestEvent,
    response: ResponseEvent,
    contact: str,
    labels: Labels | None = None,
    handover: Sentence | None = None,
) -> Notice:
    """The response notice. ``labels`` name the systems; ``handover`` says how the
    package or letter reaches the principal (never where it is stored)."""
    ja, en = TITLES[response.kind]
    labels = labels or Labels()
    lines = [ja, en, "", *_header(event)]
    lines.append(f"回答日 / Answered: {_when(response.completed_at, event)}")
    lines.append(f"結果 / Outcome: {statements.status_label(response.status)}")
    lines += _deadline(response.deadline, response.extensions, event)
    if response.systems:
        lines += ["", "システムごとの対応 / What each system did:"]
        lines += [
            f"- {labels.system(s.system)}: {statements.system_statement(response.kind, s)}"
            for s in response.systems
        ]
    if response.corrections:
        lines += ["", "項目ごとの結果 / Each field:"]
        lines += [
            f"- {f.field}: {statements.field_statement(f, labels.system)}"
            for f in response.corrections
        ]
    if nothing := statements.nothing_held(response):
        lines += ["", str(nothing)]
    if response.reasons:
        lines += ["", "理由 / Reasons:"]
        lines += [
            f"- {statements.reason(r, response, labels.system)} [{r.code}]"
            for r in response.reasons
        ]
    if response.purposes:
        lines += ["", "利用目的 / Purposes of use:"]
        lines += [f"- {p.get('description') or p.get('id')}" for p in response.purposes]
    if (response.package or response.letter) and handover is not None:
        lines += ["", "お渡しの方法 / How you receive it:", handover.ja, handover.en]
    return _notice(
        event,
        "response",
        response.revision,
        f"{ja} / {en}",
        lines,
        contact,
        response.completed_at,
        {"status": response.status, "reason_codes": ",".join(r.code for r in response.reasons)},
    )


def for_extension(event: RequestEvent, extension: Extension, revision: int, contact: str) -> Notice:
    lines = [
        "回答期限の延長のお知らせ",
        "Your request's deadline has been extended",
        "",
        *_header(event),
        f"延長前の期限 / Previous deadline: {_day(extension.previous_deadline, event)}",
        f"新しい期限 / New deadline: {_day(extension.deadline, event)}",
        "",
        "延長の理由 / Why:",
        extension.reason,
    ]
    return _notice(
        event,
        "extension",
        revision,
        "回答期限の延長のお知らせ / Your request's deadline has been extended",
        lines,
        contact,
        extension.at,
        {"deadline": extension.deadline.isoformat()},
    )


def for_hold(
    event: RequestEvent,
    reason_code: str,
    revision: int,
    at: datetime,
    contact: str,
    handover: Sentence | None = None,
) -> Notice:
    """The hold notice; ``handover`` says how the same is sent in writing, when the
    principal asked for a written answer."""
    needed = str(reasons.hold(reason_code))
    lines = ["ご請求の手続きについて", "What we need to proceed with your request", ""]
    lines += _header(event)
    lines += ["", f"必要なもの / What is needed [{reason_code}]:", needed]
    if reason_code == "fee_unpaid" and event.fee.amount_jpy is not None:
        lines.append(f"手数料 / Fee: {event.fee.amount_jpy:,}円 (JPY)")
    policy = rules.policy_for(event.regulation)
    if reason_code == "verification_pending" and policy.clock_pauses_for_verification:
        lines.append(str(reasons.PAUSED))
    if handover is not None:
        lines += ["", "書面 / In writing:", handover.ja, handover.en]
    return _notice(
        event,
        "hold",
        revision,
        "ご請求の手続きについて / What we need to proceed with your request",
        lines,
        contact,
        at,
        {"reason_code": reason_code},
    )


def acknowledgement_due(event: RequestEvent) -> datetime | None:
    """When receipt of ``event`` must be acknowledged by; None where it need not be."""
    days = rules.policy_for(event.regulation).acknowledge_within_business_days
    return None if days is None else add_business_days(event.received_at, days)


def for_acknowledgement(
    event: RequestEvent, deadline: datetime, at: datetime, contact: str
) -> Notice | None:
    due = acknowledgement_due(event)
    if due is None:
        return None
    lines = ["ご請求を受け付けました", "We have received your request", ""]
    lines += _header(event)
    lines.append(f"回答期限 / We will answer by: {_day(deadline, event)}")
    lines += [
        "",
        "本人確認の結果によっては、追加の書類をお願いすることがあります。 / "
        "We may ask you for more information to verify your identity.",
    ]
    return _notice(
        event,
        "acknowledgement",
        1,
        "ご請求を受け付けました / We have received your request",
        lines,
        contact,
        at,
        {"due": due.isoformat()},
    )


def _notice(
    event: RequestEvent,
    purpose: Purpose,
    revision: int,
    subject: str,
    lines: list[str],
    contact: str,
    at: datetime,
    facts: dict[str, str],
) -> Notice:
    lines += ["", "苦情・お問い合わせ / Complaints and questions:", contact]
    remedy = rules.policy_for(event.regulation).remedy
    if remedy:
        lines.append(remedy)
    return Notice(
        request_id=event.request_id,
        purpose=purpose,
        revision=revision,
        recipient=email_address(event.delivery.address),
        subject=f"{subject} ({event.request_id})",
        body="\n".join(lines) + "\n",
        at=at,
        facts=facts,
    )


def _header(event: RequestEvent) -> list[str]:
    return [
        f"受付番号 / Request: {event.request_id}",
        f"請求の種類 / Request kind: {event.kind.value} ({event.regulation.value.upper()})",
        f"受付日 / Received: {_when(event.received_at, event)}",
    ]


def _deadline(deadline: datetime, extensions: list[Extension], event: RequestEvent) -> list[str]:
    lines = [f"回答期限 / Deadline: {_day(deadline, event)}"]
    for e in extensions:
        was, now = _day(e.previous_deadline, event), _day(e.deadline, event)
        lines.append(f"期限の延長 / Extended from {was} to {now}: {e.reason}")
    return lines


def _when(value: datetime, event: RequestEvent) -> str:
    return str(statements.when(value, event.regulation.value))


def _day(value: datetime, event: RequestEvent) -> str:
    return str(statements.day(value, event.regulation.value))
