import hashlib
import hmac
import json
import stat
import threading
from pathlib import Path

import pytest

from services.signing import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    SIGNED_AT_HEADER,
    Keyring,
    KeyringError,
    KeyringFile,
    Permissions,
    SignatureError,
    Signer,
    add_key,
    canonical,
    remove_key,
)

SECRET = bytes(range(32))
KEYRING = Keyring({"ops": SECRET, "crm-export": b"k" * 32})
EVENT = {"request_id": "r-1", "kind": "erasure", "subject": {"identifiers": {"email": "a@x.jp"}}}


def _reason(event: object, headers: object, now: float | None = None) -> str:
    with pytest.raises(SignatureError) as caught:
        KEYRING.verify(event, headers, now)  # type: ignore[arg-type]
    return caught.value.reason_code


def test_a_signed_event_verifies_and_names_its_producer() -> None:
    headers = Signer("crm-export", b"k" * 32).headers(json.dumps(EVENT).encode())
    assert KEYRING.verify(EVENT, headers) == "crm-export"
    assert KEYRING.verify(EVENT, dict(headers)) == "crm-export"


def test_the_signature_covers_the_canonical_form_not_the_bytes() -> None:
    spaced = json.dumps(EVENT, indent=4).encode()
    reordered = json.dumps(dict(reversed(list(EVENT.items())))).encode()
    assert canonical(json.loads(spaced)) == canonical(json.loads(reordered))
    signer = Signer("ops", SECRET)
    assert signer.headers(spaced, 1_700_000_000) == signer.headers(reordered, 1_700_000_000)


def test_canonical_form_is_sorted_compact_utf8() -> None:
    assert canonical({"b": 1, "a": {"d": "名", "c": [1, 2]}}) == (
        '{"a":{"c":[1,2],"d":"名"},"b":1}'.encode()
    )


def test_a_changed_field_breaks_the_signature() -> None:
    headers = Signer("ops", SECRET).headers(json.dumps(EVENT).encode())
    tampered = {**EVENT, "kind": "disclosure"}
    assert _reason(tampered, headers) == "bad_signature"


def test_missing_unknown_and_wrong_keys_are_told_apart() -> None:
    raw = json.dumps(EVENT).encode()
    assert _reason(EVENT, None) == "unsigned"
    assert _reason(EVENT, [(KEY_ID_HEADER, b"ops")]) == "unsigned"
    assert _reason(EVENT, Signer("intruder", SECRET).headers(raw)) == "unknown_key"
    assert _reason(EVENT, Signer("ops", b"x" * 32).headers(raw)) == "bad_signature"
    md5 = [(KEY_ID_HEADER, b"ops"), (SIGNED_AT_HEADER, b"1"), (SIGNATURE_HEADER, b"md5=00")]
    assert _reason(EVENT, md5) == "bad_signature"


def test_an_event_that_is_not_json_gets_no_signature() -> None:
    assert Signer("ops", SECRET).headers(b"{not json") == []


def test_ensure_creates_an_owner_only_keyring_once(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing-keys.json"
    first = Keyring.ensure(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(first.keys) == ["ops"] and len(first.keys["ops"]) == 32
    assert first.permissions("ops") == Permissions.everything("operator")
    assert Keyring.ensure(path) == first  # not replaced


def test_a_keyring_file_is_read_again_when_it_changes_and_never_trusted_broken(
    tmp_path: Path,
) -> None:
    path = tmp_path / "signing-keys.json"
    watched = KeyringFile(path)
    with pytest.raises(KeyringError, match="no signing keyring"):
        watched.current()
    path.write_text(json.dumps({"keys": {"ops": SECRET.hex()}}))
    signed = Signer("ops", SECRET).headers(json.dumps(EVENT).encode())
    assert watched.verify(EVENT, signed) == "ops"
    path.write_text(json.dumps({"keys": {"other": (b"o" * 32).hex()}}))  # ops taken out
    with pytest.raises(SignatureError) as caught:
        watched.verify(EVENT, signed)
    assert caught.value.reason_code == "unknown_key"
    path.write_text('{"keys": {')  # half written: refused until it loads, not the last one
    for _ in range(2):
        with pytest.raises(KeyringError):
            watched.permissions("other")
    path.write_text(json.dumps({"keys": {"ops": SECRET.hex()}}))
    assert watched.verify(EVENT, signed) == "ops"


def test_secrets_stay_out_of_reprs() -> None:
    assert SECRET.hex() not in repr(KEYRING) + repr(KEYRING.signer())
    assert "crm-export" in repr(KEYRING)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("{}", "is not a keyring"),
        ('{"keys": {"ops": "zz"}}', "is not a keyring"),
        ('{"keys": {"ops": "00ff"}}', "at least 16 bytes"),
        ('{"keys": {}}', "at least 16 bytes"),
    ],
)
def test_a_malformed_keyring_is_a_clear_error(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(text)
    with pytest.raises(KeyringError, match=complaint):
        Keyring.load(path)


def test_a_missing_keyring_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="dsr up"):
        Keyring.load(tmp_path / "none.json")


def test_the_signer_defaults_to_ops_and_refuses_unknown_ids() -> None:
    assert KEYRING.signer().key_id == "ops"
    assert Keyring({"b": SECRET, "a": SECRET}).signer().key_id == "a"
    with pytest.raises(KeyringError, match="no key 'x'"):
        KEYRING.signer("x")


def test_the_signature_is_the_documented_hmac_over_signed_at_and_canonical_json() -> None:
    """What the README tells a foreign producer to compute, byte for byte."""
    raw = json.dumps(EVENT).encode()
    headers = dict(Signer("ops", SECRET).headers(raw, signed_at=1_764_752_910))
    assert headers[SIGNED_AT_HEADER] == b"1764752910"
    body = json.dumps(EVENT, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hmac.new(SECRET, b"1764752910." + body.encode(), hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"hmac-sha256={expected}".encode()
    assert KEYRING.verify(EVENT, headers, now=1_764_752_910 + 599) == "ops"


def test_a_stale_or_undated_signature_is_rejected_and_the_date_is_covered() -> None:
    raw = json.dumps(EVENT).encode()
    at = 1_764_752_910
    headers = Signer("crm-export", b"k" * 32).headers(raw, signed_at=at)
    assert _reason(EVENT, headers, now=at + 601) == "stale_signature"
    assert _reason(EVENT, headers, now=at - 601) == "stale_signature"  # from the future
    with pytest.raises(SignatureError) as caught:
        KEYRING.verify(EVENT, headers, at + 3600)
    assert caught.value.key_id == "crm-export"  # it did sign: the audit names it
    undated = [(k, v) for k, v in headers if k != SIGNED_AT_HEADER]
    assert _reason(EVENT, undated, now=at) == "stale_signature"
    # moving the date forward to look fresh breaks the signature
    redated = [(k, b"%d" % (at + 3600) if k == SIGNED_AT_HEADER else v) for k, v in headers]
    assert _reason(EVENT, redated, now=at + 3600) == "bad_signature"
    short = Keyring(KEYRING.keys, max_age_s=10)
    with pytest.raises(SignatureError):
        short.verify(EVENT, headers, at + 11)


def test_permissions_come_from_the_keyring_and_old_keys_may_only_request(
    tmp_path: Path,
) -> None:
    path = tmp_path / "signing-keys.json"
    path.write_text(
        json.dumps(
            {
                "keys": {
                    "legacy": "ab" * 32,
                    "crm-export": {
                        "secret": "cd" * 32,
                        "owner": "CRM export job",
                        "requests": ["disclosure"],
                        "provisions": ["crm"],
                    },
                    "alice": {"secret": "ef" * 32, "owner": "Alice Sato", "decisions": True},
                }
            }
        )
    )
    ring = Keyring.load(path, max_age_s=60)
    assert ring.max_age_s == 60
    legacy, crm, alice = (ring.permissions(k) for k in ("legacy", "crm-export", "alice"))
    assert (legacy.owner, legacy.releases, legacy.decisions) == ("legacy", True, False)
    assert legacy.may_request("erasure") and not legacy.may_provision("crm")
    assert crm.owner == "CRM export job" and crm.may_request("disclosure")
    assert not crm.may_request("erasure") and not crm.releases and not crm.decisions
    assert crm.may_provision("crm") and not crm.may_provision("billing")
    assert alice.decisions and not alice.may_request("disclosure") and not alice.releases
    assert "cd" * 32 not in repr(ring)


def test_dsr_keys_producers_shows_permissions_and_never_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    monkeypatch.delenv("DSR_SIGNING_KEYS", raising=False)
    Keyring.ensure(tmp_path / "signing-keys.json")
    body = json.loads((tmp_path / "signing-keys.json").read_text())
    body["keys"]["legacy"] = "ab" * 32
    (tmp_path / "signing-keys.json").write_text(json.dumps(body))
    shown = CliRunner().invoke(app, ["keys", "producers"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines == [
        "legacy  owner=legacy  requests=*  releases=yes  decisions=no  provisions=-"
        "  (bare secret: the default)",
        "ops  owner=operator  requests=*  releases=yes  decisions=yes  provisions=*",
    ]
    assert body["keys"]["ops"]["secret"] not in shown.output and "ab" * 32 not in shown.output


def test_dsr_keys_add_and_remove_a_restricted_producer_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    monkeypatch.delenv("DSR_SIGNING_KEYS", raising=False)
    path = tmp_path / "signing-keys.json"
    Keyring.ensure(path)
    runner = CliRunner()
    add = ["keys", "add", "crm-export", "--owner", "CRM export job", "--request", "disclosure"]
    added = runner.invoke(app, [*add, "--provision", "crm"])
    assert added.exit_code == 0, added.output
    secret = bytes.fromhex(added.stdout.strip().splitlines()[-1])

    keyring = Keyring.load(path)  # the file loads, ops kept, the key as asked
    assert sorted(keyring.keys) == ["crm-export", "ops"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    headers = Signer("crm-export", secret).headers(json.dumps(EVENT).encode())
    assert keyring.verify(EVENT, headers) == "crm-export"
    may = keyring.permissions("crm-export")
    assert may == Permissions(
        "CRM export job", frozenset({"disclosure"}), False, False, frozenset({"crm"})
    )
    assert not may.may_request("erasure")

    assert runner.invoke(app, add).exit_code == 1  # taken
    assert (
        runner.invoke(app, ["keys", "add", "x", "--owner", "o", "--request", "wipe"]).exit_code == 2
    )
    assert runner.invoke(app, ["keys", "add", "bad id", "--owner", "o"]).exit_code == 1

    assert runner.invoke(app, ["keys", "remove", "crm-export"]).exit_code == 0
    assert sorted(Keyring.load(path).keys) == ["ops"]
    assert runner.invoke(app, ["keys", "remove", "crm-export"]).exit_code == 1  # gone
    assert runner.invoke(app, ["keys", "remove", "ops"]).exit_code == 1  # the last one
    assert sorted(Keyring.load(path).keys) == ["ops"]


def test_keys_added_and_removed_at_once_are_all_kept(tmp_path: Path) -> None:
    """Keys added and a leaked one removed at the same moment (two operators, a script):
    every change is kept. Each reads the file, changes it and writes it whole, so
    without a lock between them the last to write undid the others, and a revoked key
    could come back."""
    path = tmp_path / "signing-keys.json"
    Keyring.ensure(path)
    add_key(path, "leaked", Permissions(owner="crm"))
    added = [f"producer-{i}" for i in range(12)]
    start = threading.Barrier(len(added) + 1)
    failed: list[BaseException] = []

    def at_once(change: object, *args: object) -> None:
        start.wait()
        try:
            change(path, *args)  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - kept for the test to read
            failed.append(exc)

    threads = [threading.Thread(target=at_once, args=(add_key, k, Permissions(k))) for k in added]
    threads.append(threading.Thread(target=at_once, args=(remove_key, "leaked")))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failed
    keys = Keyring.load(path).keys
    assert "leaked" not in keys
    assert set(added) <= set(keys)
