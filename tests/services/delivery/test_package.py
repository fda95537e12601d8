from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from services.delivery.labels import Labels
from services.delivery.letterhead import Letterhead
from services.delivery.package import PackageInfo, build_package
from services.delivery.s3storage import S3Storage
from services.delivery.storage import LocalStorage, Storage
from services.rules.sentence import Sentence
from services.statements import NO_DATA, STATUS_LABELS
from streams.records import Kind, Reason, ResponseStatus, TaskStatus
from tests.services.delivery.fixtures import make_response, make_result

PREFIX = "responses/req-1/"

CRM = [
    {"_source": "customers", "id": 1, "email": "taro@example.jp", "name": "山田太郎"},
    {"_source": "orders", "order_id": "A-1", "total": 1200.5},
    {"_source": "customers", "id": 1, "phone": None, "vip": True},
    {"_source": "orders", "order_id": "A-2", "total": 300, "note": "gift, wrapped"},
]
BILLING = [
    {"_source": "invoices", "invoice": "INV-9", "amount_jpy": 5250},
    {"invoice_batch": "B-1"},  # no _source: the default table
]


LABELS = Labels(
    {"crm": Sentence("顧客情報", "Customer records")},
    {"crm": {"customers": Sentence("会員情報", "Members")}},
)


def disclosure(**extra: Any) -> dict[str, Any]:
    results = [
        make_result("crm", records=CRM),
        make_result("billing", records=BILLING),
        make_result("ads"),
    ]
    return {
        "response": make_response(
            Kind.DISCLOSURE,
            systems={"crm": TaskStatus.OK, "billing": TaskStatus.OK, "ads": TaskStatus.OK},
            results=results,
            **extra,
        ),
        "results": results,
        "labels": LABELS,
    }


def read_csv(store: Storage, key: str) -> list[list[str]]:
    data = store.get(key)
    assert data.startswith(b"\xef\xbb\xbf")  # a BOM, so spreadsheet apps read UTF-8
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def check_manifest(store: Storage, info: PackageInfo) -> dict[str, Any]:
    """Recompute every checksum the manifest claims, and return it."""
    manifest = json.loads(store.get(PREFIX + "manifest.json"))
    names = [entry["name"] for entry in manifest["files"]]
    assert names == sorted(info.files.keys() - {"manifest.json"})
    for entry in manifest["files"]:
        data = store.get(PREFIX + entry["name"])
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() == info.files[entry["name"]]
    # canonical JSON: sorted keys, no whitespace, UTF-8 without \u escapes
    listing = json.dumps(
        manifest["files"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert manifest["files_sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    raw = store.get(PREFIX + "manifest.json")
    assert info.files["manifest.json"] == hashlib.sha256(raw).hexdigest()
    return manifest


def test_rule_4_electronic_disclosure_for_two_systems_is_json_and_csv(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    info = build_package(store, method="electronic", **disclosure())

    assert info.uri == store.uri(PREFIX + "data.json")
    assert info.prefix_uri == (tmp_path / "responses/req-1").as_uri() + "/"
    assert sorted(info.files) == [
        "billing/invoices.csv",
        "billing/records.csv",
        "crm/customers.csv",
        "crm/orders.csv",
        "data.json",
        "manifest.json",
        "summary.txt",
    ]  # "ads" found nothing, so it has no CSV
    assert read_csv(store, PREFIX + "crm/customers.csv") == [
        ["id", "email", "name", "phone", "vip"],
        ["1", "taro@example.jp", "山田太郎", "", ""],
        ["1", "", "", "", "true"],
    ]
    assert read_csv(store, PREFIX + "crm/orders.csv") == [
        ["order_id", "total", "note"],
        ["A-1", "1200.5", ""],
        ["A-2", "300", "gift, wrapped"],
    ]
    assert read_csv(store, PREFIX + "billing/records.csv") == [["invoice_batch"], ["B-1"]]
    check_manifest(store, info)

    data = json.loads(store.get(PREFIX + "data.json"))
    assert (data["request_id"], data["kind"], data["regulation"], data["status"]) == (
        "req-1",
        "disclosure",
        "appi",
        "completed",
    )
    assert data["data_found"] is True
    assert data["deadline"] == "2025-04-15T09:00:00+00:00"
    systems = {s["system"]: s for s in data["systems"]}
    assert [s["system"] for s in data["systems"]] == ["ads", "billing", "crm"]
    assert systems["crm"]["status"] == "ok"
    assert systems["crm"]["records"] == 4
    assert systems["crm"]["tables"]["customers"] == [
        {"id": 1, "email": "taro@example.jp", "name": "山田太郎"},
        {"id": 1, "phone": None, "vip": True},
    ]
    assert systems["crm"]["files"] == {
        "customers": "crm/customers.csv",
        "orders": "crm/orders.csv",
    }
    assert systems["billing"]["tables"]["records"] == [{"invoice_batch": "B-1"}]
    assert systems["ads"] == {
        "system": "ads",
        "status": "ok",
        "outcome": "no_data",
        "reason_code": None,
        "records": 0,
        "tables": {},
        "files": {},
    }

    summary = store.get(PREFIX + "summary.txt").decode()
    assert "- 顧客情報 / Customer records: 4件 / 4 record(s)" in summary
    assert "    会員情報 / Members: 2" in summary  # a table by its label
    # no label: the internal name, marked so that the gap is seen
    assert f"- ads（表示名未登録） / ads (no display name): {NO_DATA}" in summary


def test_no_data_found_is_an_outcome(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    results = [make_result("crm"), make_result("billing")]
    response = make_response(
        systems={"crm": TaskStatus.OK, "billing": TaskStatus.OK}, results=results
    )
    info = build_package(store, response=response, results=results, method="electronic")
    assert sorted(info.files) == ["data.json", "manifest.json", "summary.txt"]
    summary = store.get(PREFIX + "summary.txt").decode()
    assert f"Outcome / 結果:       {STATUS_LABELS[ResponseStatus.COMPLETED]}" in summary
    assert "お客様に関する保有個人データは存在しませんでした。" in summary
    assert "We hold no personal data about you" in summary
    assert f"crm（表示名未登録） / crm (no display name): {NO_DATA}" in summary
    assert f"billing（表示名未登録） / billing (no display name): {NO_DATA}" in summary
    data = json.loads(store.get(PREFIX + "data.json"))
    assert data["data_found"] is False
    check_manifest(store, info)


def test_rule_4_written_letter_lists_the_data_and_reasons_escaped(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    evil = "<script>alert('x')</script>"
    response = make_response(
        status=ResponseStatus.PARTIALLY_COMPLETED,
        systems={"crm": TaskStatus.OK, "hr": TaskStatus.OK, "legacy": TaskStatus.FAILED},
        reasons=[
            Reason(
                code="serious_interference",
                message="Interview notes would seriously interfere with our business.",
                system="hr",
            ),
            Reason(code="system_unavailable", message=f"Archive offline {evil}", system="legacy"),
        ],
    )
    results = [
        make_result(
            "crm",
            records=[
                {"_source": "customers", "email": "taro@example.jp", "bio": evil, evil: "column"}
            ],
        ),
        make_result("hr", records=[{"_source": evil, "grade": "A"}]),
        make_result("legacy", status="failed"),
    ]
    desk = "Privacy desk, 1-1 Chiyoda, Tokyo <privacy@example.jp>"
    head = Letterhead(
        business=Sentence("株式会社サンプル", "Sample K.K."),
        address=Sentence("〒100-0001 東京都千代田区千代田1-1", "1-1 Chiyoda, Tokyo 100-0001"),
        complaints=Sentence(desk, desk),
    )
    info = build_package(
        store,
        response=response,
        results=results,
        method="written",
        letterhead=head,
        labels=LABELS,
        addressee="山田 太郎",
    )

    assert sorted(info.files) == ["letter.html", "letter.pdf", "manifest.json"]
    assert info.uri == store.uri(PREFIX + "letter.html")
    check_manifest(store, info)
    letter = store.get(PREFIX + "letter.html").decode()
    assert letter.startswith("<!DOCTYPE html>")
    assert "開示請求に対する回答" in letter and "Response to your disclosure request" in letter
    assert "taro@example.jp" in letter and "<h4>会員情報 / Members</h4>" in letter
    assert "<h3>顧客情報 / Customer records</h3>" in letter
    # a letter: addressee, the business and its address
    assert "山田 太郎 様" in letter and "株式会社サンプル" in letter and "〒100-0001" in letter
    assert "Interview notes would seriously interfere with our business." in letter
    assert "serious_interference" in letter and "system_unavailable" in letter
    assert "2025年4月15日 / 15 April 2025" in letter  # the deadline, in Japanese form
    # a failed system's reason, from the catalogue, by its label, in both languages
    assert "legacy（表示名未登録）での処理が完了しなかったため" in letter
    assert "一部対応 / Completed in part" in letter
    assert "処理できませんでした / Could not be processed" in letter
    assert "<script" not in letter
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in letter
    # whom to complain to, and where else to turn under the request's regulation
    assert "Privacy desk, 1-1 Chiyoda, Tokyo &lt;privacy@example.jp&gt;" in letter
    assert "Personal Information Protection Commission" in letter
    assert "@media print" in letter and '"Hiragino Sans"' in letter  # CSS, not escaped
    assert "<link" not in letter and "src=" not in letter  # self-contained


def test_correction_lists_old_and_new_values_and_each_fields_outcome(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    details = {
        "changes": [
            {
                "field": "email",
                "old": "old@example.jp",
                "new": "new@example.jp",
                "table": "customers",
            },
            {"field": "name", "old": "山田 太朗", "new": "山田 太郎", "table": "customers"},
        ],
        "not_found": ["fax"],
        "not_correctable": ["birthday"],
    }
    results = [
        make_result("crm", Kind.CORRECTION, details=details),
        make_result("ads", Kind.CORRECTION, details={"changes": [], "not_found": ["email", "fax"]}),
    ]
    response = make_response(
        Kind.CORRECTION,
        systems={"crm": TaskStatus.OK, "ads": TaskStatus.OK},
        results=results,
        requested=["email", "name", "fax", "birthday"],
    )
    # a field held but not correctable, and one held nowhere: corrected in part only
    assert response.status is ResponseStatus.PARTIALLY_COMPLETED

    build_package(store, response=response, results=results, method="electronic", labels=LABELS)
    data = json.loads(store.get(PREFIX + "data.json"))
    crm = next(s for s in data["systems"] if s["system"] == "crm")
    assert crm["changes"] == details["changes"] and crm["not_found"] == ["fax"]
    assert {"field": "birthday", "outcome": "field_not_correctable", "systems": ["crm"]} in (
        data["corrections"]
    )
    summary = store.get(PREFIX + "summary.txt").decode()
    assert (
        'email（表示名未登録） / email (no display name): "old@example.jp" -> "new@example.jp"'
        in (summary)
    )
    assert (
        "- fax: この項目を保有していません（ads（表示名未登録）, 顧客情報） / "
        "Not held by ads (no display name), Customer records" in summary
    )
    assert "- email: 訂正しました（顧客情報） / Corrected in Customer records" in summary
    assert "Held in Customer records, but may not be corrected there" in summary
    assert STATUS_LABELS[ResponseStatus.COMPLETED].en not in summary
    assert "We hold no personal data" not in summary

    info = build_package(store, response=response, results=results, method="written")
    assert sorted(info.files) == ["letter.html", "letter.pdf", "manifest.json"]
    letter = store.get(PREFIX + "letter.html").decode()
    assert "訂正等請求に対する回答" in letter
    assert '<th scope="row">訂正前 / Before</th><td>old@example.jp</td>' in letter
    assert '<th scope="row">訂正後 / After</th><td>new@example.jp</td>' in letter
    assert '<th scope="row">訂正前 / Before</th><td>山田 太朗</td>' in letter
    assert "Outcome per field" in letter
    assert "<td>birthday</td><td>保有していますが訂正できません（crm（表示名未登録）） / " in letter
    assert "一部対応 / Completed in part" in letter and "Completed in full" not in letter
    assert "We hold no personal data" not in letter


def test_purpose_notification_lists_the_purposes(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    purposes = [
        {"id": "order_fulfilment", "description": "商品の発送 / Ship what you bought."},
        {"id": "support", "description": "<b>Answer questions</b>"},
    ]
    response = make_response(Kind.PURPOSE_NOTIFICATION)
    build_package(store, response=response, results=[], purposes=purposes, method="electronic")
    assert json.loads(store.get(PREFIX + "data.json"))["purposes"] == purposes
    summary = store.get(PREFIX + "summary.txt").decode()
    assert "order_fulfilment: 商品の発送 / Ship what you bought." in summary
    assert "We hold no personal data" not in summary

    build_package(store, response=response, results=[], purposes=purposes, method="written")
    letter = store.get(PREFIX + "letter.html").decode()
    assert "利用目的の通知" in letter and "商品の発送 / Ship what you bought." in letter
    assert "&lt;b&gt;Answer questions&lt;/b&gt;" in letter


def test_building_twice_gives_the_same_package(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    first = build_package(store, method="electronic", **disclosure())
    manifest = store.get(PREFIX + "manifest.json")
    again = disclosure()
    random.Random(7).shuffle(again["results"])  # arrival order does not matter
    second = build_package(store, method="electronic", **again)
    assert second == first
    assert store.get(PREFIX + "manifest.json") == manifest


def test_rebuilding_removes_files_that_no_longer_belong(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    build_package(store, method="electronic", **disclosure())
    assert store.exists(PREFIX + "crm/orders.csv")
    build_package(store, method="written", **disclosure())
    assert not store.exists(PREFIX + "crm/orders.csv")
    assert not store.exists(PREFIX + "data.json")
    assert sorted(p.name for p in (tmp_path / PREFIX).iterdir()) == [
        "letter.html",
        "letter.pdf",
        "manifest.json",
    ]


def test_unsafe_table_and_system_names_become_safe_file_names(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    response = make_response(systems={"../crm": TaskStatus.OK})
    records = [
        {"_source": "../../etc/passwd", "a": 1},
        {"_source": "Orders", "a": 2},
        {"_source": "orders", "a": 3},
        {"_source": "問い合わせ", "a": 4},
    ]
    info = build_package(
        store,
        response=response,
        results=[make_result("../crm", records=records)],
        method="electronic",
    )
    assert sorted(n for n in info.files if n.endswith(".csv")) == [
        "_crm/Orders.csv",
        "_crm/_.._etc_passwd.csv",
        "_crm/orders-2.csv",
        "_crm/問い合わせ.csv",
    ]
    assert not (tmp_path / "etc").exists()
    check_manifest(store, info)
    data = json.loads(store.get(PREFIX + "data.json"))
    assert data["systems"][0]["tables"]["../../etc/passwd"] == [{"a": 1}]


def test_results_of_another_request_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="belongs to request"):
        build_package(
            LocalStorage(tmp_path),
            response=make_response(),
            results=[make_result("crm", request_id="req-2")],
            method="electronic",
        )


def test_package_on_s3_through_the_moto_server(s3: Any, bucket: str) -> None:
    store = S3Storage(bucket, prefix="pkgs", client=s3)
    info = build_package(store, method="electronic", **disclosure())
    assert info.uri == f"s3://{bucket}/pkgs/responses/req-1/data.json"
    assert info.prefix_uri == f"s3://{bucket}/pkgs/responses/req-1/"
    check_manifest(store, info)
    head = s3.head_object(Bucket=bucket, Key="pkgs/responses/req-1/crm/orders.csv")
    assert head["ContentType"] == "text/csv; charset=utf-8"
    assert read_csv(store, PREFIX + "crm/orders.csv")[0] == ["order_id", "total", "note"]


def test_an_erasure_package_counts_what_was_kept_or_awaits_a_purge(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    counts = {
        "crm": {"changed": 2},
        "orders": {"changed": 1, "kept": 1},
        "profiles": {"changed": 1, "pending_purge": 1},
    }
    results = [
        make_result(system, Kind.ERASURE).model_copy(update=told) for system, told in counts.items()
    ]
    response = make_response(
        Kind.ERASURE, systems=dict.fromkeys(counts, TaskStatus.OK), results=results
    )
    build_package(store, response=response, results=results, method="electronic")

    data = json.loads(store.get(PREFIX + "data.json"))
    said = {
        s["system"]: {k: s[k] for k in ("changed", "kept", "pending_purge") if k in s}
        for s in data["systems"]
    }
    assert said == counts
    summary = store.get(PREFIX + "summary.txt").decode()
    assert "2 record(s) erased" in summary
    assert "1 record(s) kept, with the fields that identify you removed" in summary
    assert "1 record(s) deleted from current data (earlier copies stay" in summary
    assert summary.count("record(s) erased") == 1
