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

from datetime import UTC, datetime

from services import rules, statements
from services.delivery.contents import TITLES
from services.notify.notice import Notice, Purpose, email_address
from services.rules.policy import add_business_days
from streams.records import Extension, RequestEvent, ResponseEvent

#: What a held request needs from the principal, per hold reason.
NEEDED = {
    "verification_pending": "ご本人であることの確認が完了していません。"
    "ご案内した本人確認書類をご提出ください。 / "
    "We could not yet confirm your identity: please send the identity document we asked for.",
    "agent_authority_missing": "代理人による請求には委任状が必要です。 / "
    "A request made by an appointed agent needs a power of attorney.",
    "representation_proof_missing": "法定代理人による請求には"
    "法定代理権を確認できる書類が必要です。 / "
    "A request made by a statutory agent needs proof of legal representation.",
    "fee_unpaid": "手数料のお支払いが確認できていません。 / "
    "The fee for this request has not been paid.",
}


def for_response(event: RequestEvent, response: ResponseEvent, contact: str) -> Notice:
    ja, en = TITLES[response.kind]
    lines = [ja, en, "", *_header(event)]
    lines.append(f"回答日 / Answered: {_when(response.completed_at)}")
    lines.append(f"結果 / Outcome: {statements.status_label(response.status)}")
    lines += _deadline(response.deadline, response.extensions)
    if response.systems:
        lines += ["", "システムごとの対応 / What each system did:"]
        lines += [
            f"- {s.system}: {statements.system_statement(response.kind, s)}"
            for s in response.systems
        ]
    if response.corrections:
        lines += ["", "項目ごとの結果 / Each field:"]
        lines += [f"- {f.field}: {statements.field_statement(f)}" for f in response.corrections]
    if nothing := statements.nothing_held(response):
        lines += ["", str(nothing)]
    if response.reasons:
        lines += ["", "理由 / Reasons:"]
        lines += [f"- [{r.code}] {r.message}" for r in response.reasons]
    if response.purposes:
        lines += ["", "利用目的 / Purposes of use:"]
        lines += [f"- {p.get('description') or p.get('id')}" for p in response.purposes]
    if response.package or response.letter:
        lines.append("")
    if response.package:
        lines.append(f"開示データ / Your data: {response.package}")
    if response.letter:
        lines.append(f"書面 / Your letter: {response.letter}")
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
        f"延長前の期限 / Previous deadline: {_day(extension.previous_deadline)}",
        f"新しい期限 / New deadline: {_day(extension.deadline)}",
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
    event: RequestEvent, reason_code: str, revision: int, at: datetime, contact: str
) -> Notice:
    needed = NEEDED.get(reason_code, rules.HOLD_MESSAGES.get(reason_code, reason_code))
    lines = ["ご請求の手続きについて", "What we need to proceed with your request", ""]
    lines += _header(event)
    lines += ["", f"必要なもの / What is needed [{reason_code}]:", needed]
    if reason_code == "fee_unpaid" and event.fee.amount_jpy is not None:
        lines.append(f"手数料 / Fee: {event.fee.amount_jpy:,}円 (JPY)")
    policy = rules.policy_for(event.regulation)
    if reason_code == "verification_pending" and policy.clock_pauses_for_verification:
        lines.append(
            "確認が完了するまで回答期限は停止します。 / "
            "The deadline is paused until your identity is confirmed."
        )
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
    lines.append(f"回答期限 / We will answer by: {_day(deadline)}")
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
        f"受付日 / Received: {_when(event.received_at)}",
    ]


def _deadline(deadline: datetime, extensions: list[Extension]) -> list[str]:
    lines = [f"回答期限 / Deadline: {_day(deadline)}"]
    for e in extensions:
        lines.append(
            f"期限の延長 / Extended from {_day(e.previous_deadline)} to {_day(e.deadline)}: "
            f"{e.reason}"
        )
    return lines


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _day(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d")
