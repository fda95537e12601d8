"""Every reason code the principal can be given, in Japanese and English (APPI Art. 36).

One catalogue: the reasons a response carries (``streams.records.Reason``), the
reasons a request is held for, and, per regulation, the grounds of refusal
(``Policy.refusal_codes``). ``explain()`` words a reason for the principal from its
code, the system (by its display label) and the field it concerns. A code the
catalogue does not know, such as a data map's own standing-refusal code, is worded
from the reason's own texts, and says so visibly when it has no Japanese.
"""

from __future__ import annotations

from collections.abc import Callable

from services.rules.sentence import Sentence
from streams.records import Reason

#: Why a request waits, and what the principal must do.
HOLDS: dict[str, Sentence] = {
    "verification_pending": Sentence(
        "ご本人であることの確認が完了していません。ご案内した本人確認書類をご提出ください。",
        "We could not yet confirm your identity: please send the identity document we asked for.",
    ),
    "agent_authority_missing": Sentence(
        "代理人による請求には委任状が必要です。",
        "A request made by an appointed agent needs a power of attorney.",
    ),
    "representation_proof_missing": Sentence(
        "法定代理人による請求には法定代理権を確認できる書類が必要です。",
        "A request made by a statutory agent needs proof of legal representation.",
    ),
    "fee_unpaid": Sentence(
        "手数料のお支払いが確認できていません。",
        "The fee for this request has not been paid.",
    ),
}

#: Told with a verification hold where the regulation stops the clock meanwhile.
PAUSED = Sentence(
    "確認が完了するまで回答期限は停止します。",
    "The deadline is paused until your identity is confirmed.",
)

#: The reasons the pipeline gives in a response. ``{system}`` is the system's display
#: label, ``{field}`` the field's.
RESPONSE: dict[str, Sentence] = {
    "refused": Sentence("ご請求には応じられません。", "The request is refused."),
    "not_supported": Sentence(
        "{system}はお客様のデータを保有していますが、このご請求に対応する仕組みがありません。",
        "{system} holds your data but cannot carry out this kind of request.",
    ),
    "no_applicable_system": Sentence(
        "このご請求に対応できるシステムがないため、実施していません。",
        "No system could carry out this request, so it was not carried out.",
    ),
    "no_data": Sentence(
        "お客様に関する保有個人データは、いずれのシステムにもありませんでした。",
        "No retained personal data about you was found in any system.",
    ),
    "no_data:correction": Sentence(
        "ご指定の項目を含むお客様の記録が見つからなかったため、訂正していません。",
        "No record of yours holding these fields was found, so nothing was corrected.",
    ),
    "field_not_found": Sentence(
        "項目「{field}」を保有するシステムはありません。",
        "No system holds the field {field}.",
    ),
    "field_not_correctable": Sentence(
        "項目「{field}」は保有していますが、訂正できない項目です。",
        "The field {field} is held, but may not be corrected where it is held.",
    ),
    "written_fallback": Sentence(
        "一部のデータは書面でのみ提供できるため、電磁的記録に代えて書面で開示します"
        "（法第33条第1項ただし書）。",
        "Part of your data can only be provided on paper, so it is disclosed in writing "
        "instead of electronically (APPI Art. 33(1), proviso).",
    ),
    "system_timed_out": Sentence(
        "{system}から期限内に応答がなかったため、その部分は完了していません。",
        "{system} did not reply in time, so its part is not done.",
    ),
    "system_failed": Sentence(
        "{system}での処理が完了しなかったため、その部分は完了していません。",
        "{system} could not complete its part, so it is not done.",
    ),
    "system_request_timed_out": Sentence(
        "{system}での処理が期限内に終わらなかったため、その部分は完了していません。",
        "{system} could not finish in time, so its part is not done.",
    ),
    "system_not_supported": Sentence(
        "{system}はこのご請求に対応する仕組みがないため、その部分は完了していません。",
        "{system} cannot carry out this kind of request, so its part is not done.",
    ),
}

#: A code the pipeline makes up for a connector's error (``system_<error code>``)
#: and does not list above reads as a failure of that system.
SYSTEM_PREFIX = "system_"

NO_JAPANESE = "（日本語の説明が登録されていません）"


def hold(code: str) -> Sentence:
    """What a request held for ``code`` needs from the principal."""
    return HOLDS.get(code) or _unknown(code, code)


def explain(
    reason: Reason,
    kind: str,
    grounds: dict[str, Sentence],
    label: Callable[[str], Sentence] | None = None,
) -> Sentence:
    """``reason`` for the principal: from the regulation's ``grounds`` of refusal, the
    catalogue, or the reason's own texts, in that order. ``label`` names a system."""
    if reason.code in grounds:
        said = grounds[reason.code]
        given = reason.message_ja or reason.message
        if reason.message and reason.message not in (said.en, said.ja):
            return Sentence(f"{said.ja}（{given}）", f"{said.en} ({reason.message})")
        return said
    known = RESPONSE.get(f"{reason.code}:{kind}") or RESPONSE.get(reason.code)
    if known is None and reason.code.startswith(SYSTEM_PREFIX):
        known = RESPONSE["system_failed"]
    if known is not None:
        system = reason.system or ""
        where = label(system) if label else Sentence(system, system)
        field = reason.field or ""
        return Sentence(
            known.ja.format(system=where.ja, field=field),
            known.en.format(system=where.en, field=field),
        )
    if reason.message_ja:
        return Sentence(reason.message_ja, reason.message)
    return _unknown(reason.code, reason.message)


def _unknown(code: str, en: str) -> Sentence:
    return Sentence(f"{NO_JAPANESE} {en or code}", en or code)
