"""The privacy-ops console in Debian's chromium, against ``dsr up`` on the demo's systems:
log in, release a held request and see it answered, refuse one system's part of another
and see the response completed in part, each decision signed with the operator's key.
Screenshots go to the test artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.delivery.encrypted import open_package_storage
from services.delivery.package import read_package
from services.demo.scenario import TARO, event
from services.ledger import Ledger
from services.settings import Settings
from tests.integration.fixtures import (
    ARTIFACTS,
    chromium,
    clean_env,
    dsr_cli,
    dsr_up_process,
    wait_for,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        chromium() is None, reason="needs Debian's chromium (make test installs it)"
    ),
]

PASSWORD = "correct horse battery staple"
PENDING = {"status": "pending", "method": "mail", "reference": "pending"}
WRITTEN = {"method": "written", "address": "東京都千代田区1-1"}


def test_an_operator_releases_and_refuses_in_part_from_the_console(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    home = tmp_path / "home"
    dsr = dsr_cli(clean_env(DSR_HOME=str(home)))

    def status(request_id: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(dsr("status", request_id, "--json").stdout or "{}")
        return found

    assert dsr("demo", "seed").returncode == 0
    requests = tmp_path / "requests.jsonl"
    requests.write_text(
        "\n".join(
            json.dumps(event(rid, "disclosure", TARO, verification=PENDING, delivery=WRITTEN))
            for rid in ("cs-1", "cs-2")
        )
        + "\n"
    )
    shots = ARTIFACTS / "console"
    shots.mkdir(parents=True, exist_ok=True)

    with dsr_up_process(home, env={"DSR_CONSOLE_PORT": "0"}):
        url = wait_for("the console", lambda: _read(home / "run" / "console.url")).strip()
        added = dsr(
            "console",
            "add-user",
            "alice",
            "--key-id",
            "ops",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        assert added.returncode == 0, added.stdout + added.stderr
        wait_for("the requests to be sent", lambda: dsr("submit", str(requests)).returncode == 0)
        for rid in ("cs-1", "cs-2"):
            wait_for(f"{rid} to be held", lambda rid=rid: status(rid).get("status") == "held")

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            page.goto(url)
            expect(page).to_have_url(url + "login")
            page.fill("input[name=user]", "alice")
            page.fill("input[name=password]", "not the password")
            page.click("button[type=submit]")
            expect(page.locator(".message.bad")).to_contain_text("Wrong user or password")
            page.fill("input[name=user]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")

            held = page.locator("#held")
            expect(held).to_contain_text("cs-1")
            expect(held).to_contain_text("verification_pending")
            page.screenshot(path=str(shots / "held.png"), full_page=True)

            # a form without its anti-forgery token is refused
            forged = page.request.post(url + "requests/cs-1/release", form={"reference": "x"})
            assert forged.status == 403

            # hold -> release -> completed
            page.click("text=cs-1")
            expect(page.locator("#notice")).to_contain_text("verification_pending")
            page.fill("#release input[name=reference]", "KYC-console-1")
            page.click("#release button")
            expect(page.locator(".message.ok")).to_contain_text("cs-1 released")
            page.screenshot(path=str(shots / "released.png"), full_page=True)
            wait_for("cs-1 to complete", lambda: status("cs-1").get("status") == "completed")
            page.reload()
            expect(page.locator("#status")).to_have_text("completed")
            expect(page.locator("#notice")).to_contain_text("顧客情報 / Customer records")
            page.click("#letter")
            expect(page.locator("body")).to_contain_text("株式会社サンプル商事")
            page.screenshot(path=str(shots / "letter.png"), full_page=True)

            # refuse the orders part of cs-2, then release it
            page.goto(url + "requests/cs-2")
            page.select_option("#refuse select[name=ground]", "serious_interference_with_business")
            page.select_option("#refuse select[name=system]", "orders")
            page.fill("#refuse textarea[name=reason]", "Order records under internal review.")
            page.click("#refuse button")
            expect(page.locator(".message.ok")).to_contain_text("cs-2 refused in part")
            expect(page.locator("body")).to_contain_text("Refused in part")
            page.fill("#release input[name=reference]", "KYC-console-2")
            page.click("#release button")
            expect(page.locator(".message.ok")).to_contain_text("cs-2 released")
            wait_for(
                "cs-2 to complete", lambda: status("cs-2").get("status") == "partially_completed"
            )
            page.reload()
            page.screenshot(path=str(shots / "refused-in-part.png"), full_page=True)
            browser.close()

    settings = Settings(home=home)
    letter = read_package(open_package_storage(settings), "cs-2")["letter.html"].decode()
    assert "Order records under internal review." in letter
    assert "Green tea set" not in letter and "taro@example.jp" in letter
    ledger = Ledger(settings.database_url)
    try:
        [part] = [e for e in ledger.timeline("cs-2") if e.action == "refused_in_part"]
        released = [e for e in ledger.timeline("cs-1") if e.action == "released"]
    finally:
        ledger.close()
    assert part.detail["key_id"] == "ops" and part.detail["system"] == "orders"
    assert released and released[0].detail.get("key_id") == "ops"


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None
