"""``dsr package link``: an expiring link to a completed request's package, or why not."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner, Result

from services.cli import app
from services.delivery.package import build_package, sha256
from services.delivery.storage import Storage, open_storage
from services.ledger import Ledger
from services.settings import Settings
from tests.fixtures.ledger_rows import finish
from tests.fixtures.moto_server import CREDENTIALS
from tests.services.delivery.fixtures import make_response, make_result

CRM = [{"id": 1, "email": "a@example.jp"}]


def dsr(*args: str) -> Result:
    return CliRunner().invoke(app, ["package", "link", *args], env={"COLUMNS": "200"})


def complete(settings: Settings, request_id: str, *, package: bool = True) -> Storage:
    """Finish ``request_id`` through crm, store its electronic package, complete it."""
    storage = open_storage(settings.storage_url, s3_endpoint_url=settings.s3_endpoint_url)
    ledger = Ledger(settings.database_url)
    ledger.migrate()
    finish(ledger, request_id, {"crm": "ok"}, took=0.01)
    response = make_response(request_id=request_id)
    if package:
        info = build_package(
            storage,
            response=response,
            results=[make_result("crm", request_id=request_id, records=CRM)],
            method="electronic",
        )
        response = response.model_copy(update={"package": info.uri})
    ledger.complete(request_id, "completed", response.model_dump(mode="json"), latency_ms=1)
    ledger.close()
    return storage


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    for name in ("DSR_DATABASE_URL", "DSR_STORAGE_URL", "DSR_PACKAGE_LINK_TTL_S"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def s3_settings(
    env: None, bucket: str, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("DSR_STORAGE_URL", f"s3://{bucket}/pkgs")
    monkeypatch.setenv("DSR_S3_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", CREDENTIALS["region_name"])
    return Settings()


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback moto
        data: bytes = answer.read()
        return data


def test_prints_a_link_that_downloads_the_package(s3_settings: Settings) -> None:
    storage = complete(s3_settings, "r-1")
    done = dsr("r-1")
    assert done.exit_code == 0, done.output
    url = done.stdout.strip()
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["900"]
    data = fetch(url)
    assert data == storage.get("responses/r-1/data.json")

    manifest = dsr("r-1", "--file", "manifest.json", "--expires-minutes", "5")
    assert manifest.exit_code == 0, manifest.output
    assert parse_qs(urlsplit(manifest.stdout.strip()).query)["X-Amz-Expires"] == ["300"]
    listed = {f["name"]: f["sha256"] for f in json.loads(fetch(manifest.stdout.strip()))["files"]}
    assert listed["data.json"] == sha256(data)


def test_explains_what_it_cannot_link(s3_settings: Settings) -> None:
    complete(s3_settings, "r-1")
    complete(s3_settings, "r-2", package=False)
    unknown = dsr("nope")
    assert unknown.exit_code == 1
    assert "no response to request 'nope'" in unknown.output
    assert unknown.stdout == ""
    bare = dsr("r-2")
    assert bare.exit_code == 1
    assert "has no stored package" in bare.output
    missing = dsr("r-1", "--file", "letter.pdf")
    assert missing.exit_code == 1
    assert "has no 'letter.pdf'" in missing.output
    too_long = dsr("r-1", "--expires-minutes", str(7 * 24 * 60 + 1))
    assert too_long.exit_code == 2
    assert "7 days" in too_long.output
    escape = dsr("r-1", "--file", "../r-2/data.json")
    assert escape.exit_code == 2
    assert "'..' segment" in escape.output


def test_local_storage_says_it_cannot_make_links(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSR_ENCRYPT_PACKAGES", "false")
    settings = Settings()
    assert settings.storage_url.startswith("file://")
    complete(settings, "r-1")
    local = dsr("r-1")
    assert local.exit_code == 2
    assert "cannot make expiring links" in local.output
    assert local.stdout == ""
    monkeypatch.setenv("DSR_ENCRYPT_PACKAGES", "true")  # sealed: a link would hand out ciphertext
    sealed = dsr("r-1")
    assert sealed.exit_code == 2
    assert "cannot be linked" in sealed.output
    assert sealed.stdout == ""
