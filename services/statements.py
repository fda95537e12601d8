"""What the principal is told about outcomes, in Japanese and English.

The one place that turns outcomes (``streams.records.Outcome``) and a response's
status into sentences. The response notice (``services.notify.compose``), the
letter and the electronic package's summary (``services.delivery``) all take their
claims from here, built from the ``ResponseEvent`` itself, so none of them can say
more than the response does:

- "全部対応 / Completed in full" only beside a ``completed`` status (``status_label``);
- "we hold no personal data about you" only when ``services.responses.holds_nothing``
  holds: every system asked found nothing, none failed, refused or knew the principal
  (``nothing_held``);
- a change is claimed only for a ``done`` outcome (``system_statement``,
  ``field_statement``), and an erasure's records kept with identifying fields removed
  or pseudonymised (``SystemOutcome.kept``) are told as kept, never as erased; those
  whose earlier copies stay until a scheduled clean-up (``SystemOutcome.pending_purge``)
  are told so.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services import rules
from services.responses import holds_nothing
from services.rules import reasons
from services.rules.sentence import Sentence
from streams.records import (
    PACKAGE_KINDS,
    FieldOutcome,
    Kind,
    Outcome,
    Reason,
    ResponseEvent,
    ResponseStatus,
    SystemOutcome,
)

#: A system's display label by its name.
Labeller = Callable[[str], Sentence]

STATUS_LABELS: dict[ResponseStatus, Sentence] = {
    ResponseStatus.COMPLETED: Sentence("全部対応", "Completed in full"),
    ResponseStatus.PARTIALLY_COMPLETED: Sentence("一部対応", "Completed in part"),
    ResponseStatus.REFUSED: Sentence("対応不可", "Refused"),
    ResponseStatus.FAILED: Sentence("対応できませんでした", "Could not be completed"),
}

NO_DATA = Sentence("該当するデータはありません", "No data found")
NOTHING_CHANGED = Sentence("訂正した項目はありません", "No field was corrected")

_NOTHING_HELD = {
    Kind.DISCLOSURE: Sentence(
        "お客様に関する保有個人データは存在しませんでした。",
        "We hold no personal data about you in any of our systems.",
    ),
    Kind.PURPOSE_NOTIFICATION: Sentence(
        "お客様に関する保有個人データは存在しませんでした。",
        "We hold no personal data about you in any of our systems.",
    ),
    Kind.THIRD_PARTY_RECORDS: Sentence(
        "お客様の個人データの第三者提供に関する記録は存在しませんでした。",
        "We hold no records of providing your personal data to third parties, "
        "or of receiving it from them.",
    ),
}

_DONE = {
    Kind.ERASURE: ("{n}件を消去しました", "{n} record(s) erased"),
    Kind.SUSPENSION: ("{n}件の利用を停止しました", "Use of {n} record(s) stopped"),
    Kind.THIRD_PARTY_STOP: (
        "{n}件の第三者提供を停止しました",
        "Provision of {n} record(s) to third parties stopped",
    ),
}

#: An erasure's records kept with the fields that identify the principal removed or
#: pseudonymised: never told as erased.
_KEPT = (
    "{n}件の記録は保持し、お客様を識別する項目を消去または仮名化しました",
    "{n} record(s) kept, with the fields that identify you removed or pseudonymised",
)

#: An erasure's records deleted from the system's current data whose earlier copies stay
#: in its log until a scheduled clean-up removes them: never told as gone entirely.
_PENDING_PURGE = (
    "{n}件を現在のデータから削除しました（以前の版は、定期的な整理で削除されるまでシステムの"
    "ログに残ります）",
    "{n} record(s) deleted from current data (earlier copies stay in the system's log "
    "until its scheduled clean-up removes them)",
)

_ALREADY = {
    Kind.DISCLOSURE: Sentence(
        "ご本人の登録はありますが、開示する記録はありませんでした",
        "You are known here, but there were no records to disclose",
    ),
    Kind.THIRD_PARTY_RECORDS: Sentence(
        "ご本人の登録はありますが、第三者提供の記録はありませんでした",
        "You are known here, but there are no provision records",
    ),
    Kind.PURPOSE_NOTIFICATION: Sentence("保有しています", "Holds your data"),
    Kind.CORRECTION: Sentence("既に訂正後の内容でした", "Already held the values you asked for"),
    Kind.ERASURE: Sentence("既に消去済みでした", "Already erased"),
    Kind.SUSPENSION: Sentence("既に利用を停止していました", "Use was already stopped"),
    Kind.THIRD_PARTY_STOP: Sentence(
        "既に第三者提供を停止していました", "Provision to third parties was already stopped"
    ),
}

_OTHER = {
    Outcome.NOT_APPLICABLE: Sentence("対象外", "Not applicable"),
    Outcome.NOT_SUPPORTED: Sentence(
        "お客様のデータを保有していますが、この請求には対応できません",
        "Holds your data, but cannot carry out this request",
    ),
    Outcome.FIELD_NOT_FOUND: Sentence(
        "訂正を求められた項目を保有していません", "Does not hold the fields to correct"
    ),
    Outcome.FIELD_NOT_CORRECTABLE: Sentence(
        "項目を保有していますが、訂正できません", "Holds the fields, but may not correct them"
    ),
    Outcome.REFUSED: Sentence("対応不可", "Withheld"),
    Outcome.FAILED: Sentence("処理できませんでした", "Could not be processed"),
    Outcome.TIMED_OUT: Sentence("期限内に応答がありませんでした", "No reply in time"),
}

_FIELD = {
    Outcome.DONE: ("訂正しました（{s}）", "Corrected in {s}"),
    Outcome.ALREADY_DONE: (
        "既に訂正後の内容です（{s}）",
        "Already held the value asked for in {s}",
    ),
    Outcome.NO_DATA: ("お客様の記録が見つかりません（{s}）", "No record of yours found in {s}"),
    Outcome.NOT_APPLICABLE: ("対象外です", "No system could be asked"),
    Outcome.NOT_SUPPORTED: (
        "訂正に対応していません（{s}）",
        "Cannot be corrected in {s}, which holds your data but does not do corrections",
    ),
    Outcome.FIELD_NOT_FOUND: ("この項目を保有していません（{s}）", "Not held by {s}"),
    Outcome.FIELD_NOT_CORRECTABLE: (
        "保有していますが訂正できません（{s}）",
        "Held in {s}, but may not be corrected there",
    ),
    Outcome.REFUSED: ("訂正をお断りしました（{s}）", "Correction refused in {s}"),
    Outcome.FAILED: ("処理できませんでした（{s}）", "Could not be processed in {s}"),
    Outcome.TIMED_OUT: ("期限内に応答がありませんでした（{s}）", "No reply in time from {s}"),
}


def status_label(status: ResponseStatus) -> Sentence:
    """The response's outcome in a few words."""
    return STATUS_LABELS[status]


def nothing_held(response: ResponseEvent) -> Sentence | None:
    """ "We hold no personal data about you" (or, for provision records, none of those),
    when the outcomes bear it out; None when they do not."""
    if response.status is not ResponseStatus.COMPLETED:
        return None
    if not holds_nothing(response.kind, response.systems):
        return None
    return _NOTHING_HELD.get(response.kind)


def system_statement(kind: Kind, s: SystemOutcome) -> Sentence:
    """What one system did, with its reason code when it has one."""
    said = _system(kind, s)
    if s.reason_code:
        return Sentence(said.ja, f"{said.en} [{s.reason_code}]")  # "ja / en [code]"
    return said


def _system(kind: Kind, s: SystemOutcome) -> Sentence:
    if s.outcome is Outcome.DONE:
        return _done(kind, s)
    if s.outcome is Outcome.ALREADY_DONE:
        return _ALREADY[kind]
    if s.outcome is Outcome.NO_DATA:
        if kind is Kind.CORRECTION:
            return Sentence("訂正する記録が見つかりません", "No record of yours found to correct")
        return NO_DATA
    if s.outcome is Outcome.REFUSED and s.records and kind in PACKAGE_KINDS:
        return Sentence(
            f"{s.records}件を開示し、その他は開示できません",
            f"{s.records} record(s) disclosed; the rest is withheld",
        )
    return _OTHER[s.outcome]


def _done(kind: Kind, s: SystemOutcome) -> Sentence:
    if kind in (Kind.DISCLOSURE, Kind.THIRD_PARTY_RECORDS):
        return Sentence(f"{s.records}件", f"{s.records} record(s)")
    if kind is Kind.PURPOSE_NOTIFICATION:
        return Sentence("保有しています", "Holds your data")
    if kind is Kind.CORRECTION:
        if not s.fields:
            return Sentence("訂正しました", "Corrected")
        n = len(s.fields)
        return Sentence(f"{n}項目を訂正しました", f"{n} field(s) corrected")
    done = _DONE[kind]
    counts: tuple[tuple[tuple[str, str], int], ...] = ((done, s.changed),)
    if kind is Kind.ERASURE:
        # Responses recorded before a count existed have it 0; none is more than changed.
        kept = min(s.kept, s.changed)
        pending = min(s.pending_purge, s.changed - kept)
        counts = (done, s.changed - kept - pending), (_PENDING_PURGE, pending), (_KEPT, kept)
    told = [(template, n) for template, n in counts if n] or [(done, 0)]
    return Sentence(
        "。".join(ja.format(n=n) for (ja, _), n in told),
        "; ".join(en.format(n=n) for (_, en), n in told),
    )


def field_statement(f: FieldOutcome, label: Labeller | None = None) -> Sentence:
    """What became of one field of a correction, and where (the field is not named);
    ``label`` names the systems."""
    ja, en = _FIELD[f.outcome]
    names = [label(s) if label else Sentence(s, s) for s in f.systems]
    return Sentence(
        ja.format(s=", ".join(n.ja for n in names)), en.format(s=", ".join(n.en for n in names))
    )


_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def when(value: datetime, regulation: str) -> Sentence:
    """A moment in the regulation's time zone: 2026年12月3日 14時05分（JST）."""
    local = value.astimezone(rules.policy_for(regulation).timezone)
    zone = local.tzname() or "UTC"
    return Sentence(
        f"{local.year}年{local.month}月{local.day}日 {local.hour}時{local.minute:02d}分（{zone}）",
        f"{local.day} {_MONTHS[local.month - 1]} {local.year}, {local:%H:%M} ({zone})",
    )


def day(value: datetime, regulation: str) -> Sentence:
    """A date in the regulation's time zone: 2026年12月3日."""
    local = value.astimezone(rules.policy_for(regulation).timezone)
    return Sentence(
        f"{local.year}年{local.month}月{local.day}日",
        f"{local.day} {_MONTHS[local.month - 1]} {local.year}",
    )


def reason(r: Reason, response: ResponseEvent, label: Labeller | None = None) -> Sentence:
    """A reason of ``response`` for the principal, from the reason catalogue."""
    grounds = rules.policy_for(response.regulation).refusal_codes
    return reasons.explain(r, response.kind.value, grounds, label)
