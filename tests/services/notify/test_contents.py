"""What each notice says, built by the notices agent from what the ledger recorded."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from services import statements
from services.delivery.contents import TITLES
from services.delivery.handover import ARRANGED, HOLD_BY_POST
from services.delivery.package import hold_letter_prefix
from services.demo.scenario import TARO, event
from services.ledger import as_utc
from services.notify import Notice, OutboxNotifier
from services.rules import appi, ccpa, reasons
from services.rules.appi import JST
from services.rules.policy import add_business_days
from services.statements import STATUS_LABELS
from streams import topics
from streams.agents import aggregate, decisions, fanout, intake, notices
from streams.context import Outgoing, Pipeline
from streams.records import DecisionEvent, Kind, ResponseStatus, dump
from tests.streams.agents.fixtures import run_tasks, to

NO_DATA_ANYWHERE = (
    "お客様に関する保有個人データは存在しませんでした。 / "
    "We hold no personal data about you in any of our systems."
)
CONTACT = "Privacy desk, 1-1 Chiyoda, Tokyo / privacy@example.co.jp"
EMAIL = {"method": "electronic", "address": "taro@example.jp"}


def submit(p: Pipeline, request_id: str, kind: str = "disclosure", **kw: Any) -> list[Outgoing]:
    identifiers = kw.pop("identifiers", TARO)
    return intake.handle_request(p, json.dumps(event(request_id, kind, identifiers, **kw)).encode())


def complete(p: Pipeline, request_id: str) -> None:
    out = fanout.handle_accepted(p, request_id)
    while results := run_tasks(p, out):
        out = [o for raw in results for o in aggregate.handle_result(p, raw)]


def notice_of(p: Pipeline, request_id: str, purpose: notices.Purpose) -> Notice:
    built = notices.prepare(p, notices.due(request_id, purpose).value, CONTACT)
    assert built is not None
    return built


def test_a_completed_disclosure_tells_what_each_system_found(pipeline: Pipeline) -> None:
    submit(pipeline, "c-1", delivery=EMAIL)
    complete(pipeline, "c-1")
    notice = notice_of(pipeline, "c-1", "response")
    assert notice.id == "c-1:response:1" and notice.recipient == "taro@example.jp"
    ja, en = TITLES[Kind.DISCLOSURE]
    assert notice.subject == f"{ja} / {en} (c-1)"
    lines = notice.body.splitlines()
    assert f"結果 / Outcome: {STATUS_LABELS[ResponseStatus.COMPLETED]}" in lines
    # systems by their display labels, never their internal names
    assert {
        "- 顧客情報 / Customer records: 1件 / 1 record(s)",
        "- ご注文履歴 / Order history: 2件 / 2 record(s)",
    } <= set(lines)
    assert (
        "- 提携先への提供記録 / Provision to partners: 対象外 / Not applicable [not_applicable]"
        in lines
    )
    assert not any(line.startswith(("- crm", "- orders", "- partners")) for line in lines)
    assert NO_DATA_ANYWHERE not in notice.body
    # dates in Japanese form, in JST for the APPI
    deadline = as_utc(pipeline.ledger.request("c-1").deadline_at).astimezone(JST)
    assert (
        f"回答期限 / Deadline: {deadline.year}年{deadline.month}月{deadline.day}日 / "
        f"{deadline.day} {deadline:%B} {deadline.year}" in lines
    )
    # how the package reaches the principal: local storage cannot link, so the desk
    # arranges it; a server path is never given
    assert "お渡しの方法 / How you receive it:" in lines and ARRANGED.ja in lines
    assert "file://" not in notice.body and "responses/c-1" not in notice.body
    assert CONTACT in lines
    assert "taro@example.jp" not in notice.body  # the identifiers are not repeated


def test_rule_6_a_disclosure_of_data_that_does_not_exist_says_so(pipeline: Pipeline) -> None:
    submit(pipeline, "n-1", identifiers={"email": "nobody@example.jp"})
    complete(pipeline, "n-1")
    notice = notice_of(pipeline, "n-1", "response")
    assert NO_DATA_ANYWHERE in notice.body.splitlines()
    assert f"- {reasons.RESPONSE['no_data']} [no_data]" in notice.body.splitlines()
    assert notice.recipient is None  # no address: kept in the outbox, addressed to nobody


def test_rule_5_a_refusal_tells_the_principal_its_reason_code(pipeline: Pipeline) -> None:
    submit(pipeline, "x-1", verification={"status": "pending"}, delivery=EMAIL)
    refusal = DecisionEvent(
        request_id="x-1",
        decision="refusal",
        ground="harm_to_principal_or_third_party",
        reason="It would reveal another customer's complaint.",
        decided_by="op-2",
    )
    out = decisions.handle_decision(pipeline, dump(refusal))
    assert [o.value for o in to(topics.NOTICES, out)] == [notices.due("x-1", "response").value]
    notice = notice_of(pipeline, "x-1", "response")
    lines = notice.body.splitlines()
    assert f"結果 / Outcome: {STATUS_LABELS[ResponseStatus.REFUSED]}" in lines
    # the reason in Japanese and English, from the regulation's own text
    ground = appi.POLICY.refusal_codes["harm_to_principal_or_third_party"]
    assert f"- {ground} [harm_to_principal_or_third_party]" in lines
    assert "法第33条第2項第1号" in ground.ja
    assert CONTACT in lines and "Personal Information Protection Commission" in notice.body


def test_rule_15_a_ccpa_request_is_acknowledged_within_10_business_days(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    friday = datetime.now().astimezone() - timedelta(days=1)
    while friday.weekday() != 4:
        friday -= timedelta(days=1)
    out = submit(pipeline, "ca-1", regulation="ccpa", received_at=friday.isoformat())
    assert to(topics.NOTICES, out) == [notices.due("ca-1", "acknowledgement")]
    outbox = OutboxNotifier(tmp_path / "outbox", sender="privacy@example.co.jp")
    for o in to(topics.NOTICES, out):
        asyncio.run(notices.handle_notice(pipeline, outbox, o.value, CONTACT))
    [audit] = [e for e in pipeline.ledger.timeline("ca-1") if e.action == "notified"]
    due = datetime.fromisoformat(audit.detail["due"])
    assert ccpa.POLICY.acknowledge_within_business_days == 10
    assert due == add_business_days(friday, 10) == friday + timedelta(days=14)
    assert audit.detail["purpose"] == "acknowledgement" and as_utc(audit.at) <= due
    sent = (tmp_path / "outbox" / "ca-1" / "ca-1:acknowledgement:1.eml").read_bytes()
    body = message_from_bytes(sent, policy=policy.default).get_body()
    assert body is not None and "We have received your request" in body.get_content()
    # the other regulations ask for no acknowledgement
    assert to(topics.NOTICES, submit(pipeline, "ga-1", regulation="gdpr")) == []


def test_a_hold_says_what_is_needed(pipeline: Pipeline) -> None:
    fee = {"required": True, "paid": False, "amount_jpy": 1000}
    out = submit(pipeline, "h-1", fee=fee)
    assert to(topics.NOTICES, out) == [notices.due("h-1", "hold")]
    notice = notice_of(pipeline, "h-1", "hold")
    assert notice.id == "h-1:hold:1"
    assert "[fee_unpaid]" in notice.body and "1,000円 (JPY)" in notice.body


def test_a_written_request_held_for_its_fee_gets_a_letter_too(pipeline: Pipeline) -> None:
    fee = {"required": True, "paid": False, "amount_jpy": 1000}
    written = {"method": "written", "address": "東京都千代田区1-1"}
    raw = event("hw-1", "disclosure", TARO, fee=fee, delivery=written)
    raw["subject"]["name"] = "山田 太郎"
    intake.handle_request(pipeline, json.dumps(raw).encode())
    notice = notice_of(pipeline, "hw-1", "hold")
    assert HOLD_BY_POST.ja in notice.body.splitlines()
    letter = pipeline.storage.get(hold_letter_prefix("hw-1", 1) + "letter.html").decode()
    assert "山田 太郎 様" in letter and "1,000円 (JPY)" in letter
    assert reasons.hold("fee_unpaid").ja in letter and "fee_unpaid" in letter
    pdf = pipeline.storage.get(hold_letter_prefix("hw-1", 1) + "letter.pdf")
    assert pdf.startswith(b"%PDF-")


def test_an_extension_tells_why_and_the_new_deadline(pipeline: Pipeline) -> None:
    submit(pipeline, "e-1", regulation="gdpr", verification={"status": "pending"})
    extension = DecisionEvent(
        request_id="e-1", decision="extension", reason="Many systems to search.", decided_by="op"
    )
    assert decisions.handle_decision(pipeline, dump(extension)) == [notices.due("e-1", "extension")]
    notice = notice_of(pipeline, "e-1", "extension")
    new = pipeline.ledger.request("e-1").deadline_at
    said = statements.day(as_utc(new), "gdpr")
    assert f"新しい期限 / New deadline: {said}" in notice.body.splitlines()
    assert "Many systems to search." in notice.body.splitlines()
    assert "supervisory authority" in notice.body
