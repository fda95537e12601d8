import json
import stat
from pathlib import Path

import pytest

from services.signing import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    Keyring,
    KeyringError,
    SignatureError,
    Signer,
    canonical,
)

SECRET = bytes(range(32))
KEYRING = Keyring({"ops": SECRET, "crm-export": b"k" * 32})
EVENT = {"request_id": "r-1", "kind": "erasure", "subject": {"identifiers": {"email": "a@x.jp"}}}


def _reason(event: object, headers: object) -> str:
    with pytest.raises(SignatureError) as caught:
        KEYRING.verify(event, headers)  # type: ignore[arg-type]
    return caught.value.reason_code


def test_a_signed_event_verifies_and_names_its_producer() -> None:
    headers = Signer("crm-export", b"k" * 32).headers(json.dumps(EVENT).encode())
    assert KEYRING.verify(EVENT, headers) == "crm-export"
    assert KEYRING.verify(EVENT, dict(headers)) == "crm-export"


def test_the_signature_covers_the_canonical_form_not_the_bytes() -> None:
    spaced = json.dumps(EVENT, indent=4).encode()
    reordered = json.dumps(dict(reversed(list(EVENT.items())))).encode()
    assert canonical(json.loads(spaced)) == canonical(json.loads(reordered))
    assert Signer("ops", SECRET).headers(spaced) == Signer("ops", SECRET).headers(reordered)


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
    assert _reason(EVENT, [(KEY_ID_HEADER, b"ops"), (SIGNATURE_HEADER, b"md5=00")]) == (
        "bad_signature"
    )


def test_an_event_that_is_not_json_gets_no_signature() -> None:
    assert Signer("ops", SECRET).headers(b"{not json") == []


def test_ensure_creates_an_owner_only_keyring_once(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing-keys.json"
    first = Keyring.ensure(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(first.keys) == ["ops"] and len(first.keys["ops"]) == 32
    assert Keyring.ensure(path) == first  # not replaced


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
