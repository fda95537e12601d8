"""``dsr demo seed`` prepares the sample systems for ``dsr up``; a written disclosure
on them is a letter fit to post: the letterhead, the addressee, display labels, dates in
Japanese form, only the principal's data, and a notice that says it comes by post."""

from __future__ import annotations

import json
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from services.delivery.encrypted import open_package_storage
from services.delivery.handover import BY_POST
from services.delivery.package import read_package
from services.demo.scenario import TARO, event
from services.settings import Settings
from tests.integration.fixtures import clean_env, dsr_cli, dsr_up_process, wait_for

pytestmark = pytest.mark.integration


def test_a_seeded_home_answers_a_written_disclosure_with_a_letter(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = clean_env(DSR_HOME=str(home))
    dsr = dsr_cli(env)

    seeded = dsr("demo", "seed")
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    for name in ("crm.db", "orders.db", "datamap.yaml", "letterhead.yaml"):
        assert (home / name).exists(), name

    written = {"method": "written", "address": "東京都千代田区1-1"}
    body = event("seeded-1", "disclosure", TARO, delivery=written)
    body["subject"]["name"] = "山田 太郎"
    request = tmp_path / "request.jsonl"
    request.write_text(json.dumps(body, ensure_ascii=False) + "\n", encoding="utf-8")

    with dsr_up_process(home):
        wait_for("dsr up to start", lambda: (home / "signing-keys.json").exists())
        wait_for("the request to be sent", lambda: dsr("submit", str(request)).returncode == 0)
        wait_for(
            "the request to complete",
            lambda: (
                json.loads(dsr("status", "seeded-1", "--json").stdout or "{}").get("status")
                == "completed"
            ),
        )
        outbox = home / "outbox" / "seeded-1"
        notice = wait_for("the response notice", lambda: list(outbox.glob("*response*.eml")))

        # dsr responses reads them back: every response, or one request's
        listed = dsr("responses", "--request", "seeded-1", "--json")
        assert listed.returncode == 0, listed.stderr
        [response] = [json.loads(line) for line in listed.stdout.splitlines()]
        assert response["status"] == "completed" and response["letter"]
        shown = dsr("responses")
        assert "seeded-1" in shown.stdout and "completed" in shown.stdout
        assert dsr("responses", "--request", "nobody").returncode == 1
        # --follow --request waits for a response still to come, then stops
        follower = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "responses", "--follow"]
            + ["--request", "seeded-2", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        later = event("seeded-2", "erasure", {"email": "nobody@example.jp"})
        later["grounds"] = ["no_longer_needed"]
        request.write_text(json.dumps(later) + "\n", encoding="utf-8")
        assert dsr("submit", str(request)).returncode == 0
        out, _ = follower.communicate(timeout=120)
        assert follower.returncode == 0
        [followed] = [json.loads(line) for line in out.splitlines()]
        assert followed["request_id"] == "seeded-2" and followed["kind"] == "erasure"

        # dsr release: a held request goes on once its evidence is confirmed
        pending = {"status": "pending", "method": "mail", "reference": "pending"}
        held = event("seeded-3", "disclosure", TARO, verification=pending)
        request.write_text(json.dumps(held) + "\n", encoding="utf-8")
        assert dsr("submit", str(request)).returncode == 0
        wait_for(
            "seeded-3 to be held",
            lambda: (
                json.loads(dsr("status", "seeded-3", "--json").stdout or "{}").get("status")
                == "held"
            ),
        )
        released = dsr("release", "seeded-3", "--method", "in_person", "--reference", "KYC-9")
        assert released.returncode == 0 and "released" in released.stdout, released.stderr
        wait_for(
            "seeded-3 to complete",
            lambda: (
                json.loads(dsr("status", "seeded-3", "--json").stdout or "{}").get("status")
                == "completed"
            ),
        )
        again = dsr("release", "seeded-3", "--reference", "KYC-9")
        assert again.returncode == 1 and "is not held" in again.stderr

    settings = Settings(home=home)
    letter = read_package(open_package_storage(settings), "seeded-1")["letter.html"].decode()
    assert "株式会社サンプル商事" in letter and "〒100-0001" in letter  # the letterhead
    assert "山田 太郎 様" in letter  # the addressee, from subject.name
    assert "顧客情報 / Customer records" in letter and "メールアドレス / Email address" in letter
    assert "（表示名未登録）" not in letter  # every system and field of the demo is labelled
    assert "<td>crm</td>" not in letter and "<h3>crm</h3>" not in letter
    assert "（JST）" in letter and "年" in letter and "UTC" not in letter
    assert "taro@example.jp" in letter and "hanako@example.jp" not in letter
    assert "C-1002" not in letter  # Hanako's customer id

    part = message_from_bytes(notice[0].read_bytes(), policy=policy.default).get_body()
    assert part is not None
    text = part.get_content()
    assert BY_POST.ja in text and BY_POST.en in text  # how it is handed over
    assert "file://" not in text and "responses/seeded-1" not in text
    assert "顧客情報 / Customer records" in text and "- crm:" not in text
