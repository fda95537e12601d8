"""The S3 connector against the moto server over HTTP."""

from __future__ import annotations

import json
import logging

import pytest

from connectors import ConfigError, FatalError, NotSupported, OperationResult, RetriableError
from connectors.s3 import S3Connector
from streams.records import Change, Kind
from tests.connectors.s3.fixtures import ALICE, BOB, NOBODY, RETRY_AFTER, SECRET, S3Harness


def by_key(result: OperationResult) -> dict[str, dict[str, object]]:
    return {str(r["key"]): r for r in result.records}


def test_check_reaches_the_bucket(env: S3Harness) -> None:
    result = env.connector().check()
    assert result.ok, result.message
    assert "not versioned" in result.message


def test_check_reports_a_missing_bucket_without_raising(env: S3Harness) -> None:
    result = env.connector(bucket="no-such-bucket-here").check()
    assert not result.ok
    assert "HeadBucket" in result.message


def test_disclose_lists_and_packages_only_the_subjects_objects(env: S3Harness) -> None:
    records = by_key(env.connector().disclose(ALICE))

    assert sorted(records) == [
        "exports/alice@example.com/profile.json",
        "users/1/avatar.png",
        "users/1/notes.txt",
        "users/1/profile.json",
    ]
    profile = records["users/1/profile.json"]
    assert profile["content"] == {"name": "Alice Example", "phone": "01"}
    assert profile["content_type"] == "application/json"
    assert profile["_source"] == f"{env.bucket}/users/{{customer_id}}/"
    assert isinstance(profile["size"], int) and profile["size"] > 0
    assert str(profile["last_modified"]).startswith("20")
    assert records["users/1/notes.txt"]["content"] == "notes about Alice Example"
    assert "content" not in records["users/1/avatar.png"]
    assert "image/png" in str(records["users/1/avatar.png"]["content_omitted"])
    assert "Bob" not in json.dumps(list(records.values()))


def test_disclose_omits_content_over_the_size_limit(env: S3Harness) -> None:
    env.put("users/1/big.txt", "x" * 2048, "text/plain")
    records = by_key(env.connector(max_content_bytes=1024).disclose(ALICE))
    assert records["users/1/big.txt"]["content_omitted"] == "larger than 1024 bytes"
    assert records["users/1/profile.json"]["content"]["name"] == "Alice Example"  # type: ignore[index]


def test_disclose_gives_malformed_json_as_text(env: S3Harness) -> None:
    env.put("users/1/broken.json", '{"name": NaN')
    env.put("users/1/deep.json", "[" * 100_000 + "]" * 100_000)
    env.put("users/1/latin1.txt", "caf\xe9".encode("latin-1"), "text/plain; charset=latin-1")
    env.put("users/1/bad.txt", b"\xff\xfe\xfa", "text/plain")
    records = by_key(env.connector().disclose(ALICE))
    assert records["users/1/broken.json"]["content"] == '{"name": NaN'
    assert str(records["users/1/deep.json"]["content"]).startswith("[[[")
    assert records["users/1/latin1.txt"]["content"] == "café"
    assert "not valid text" in str(records["users/1/bad.txt"]["content_omitted"])


@pytest.mark.parametrize("identifiers", [NOBODY, {"customer_id": "999"}, {"phone": "1"}, {}])
def test_an_unknown_subject_is_an_empty_result(env: S3Harness, identifiers: dict[str, str]) -> None:
    connector = env.connector()
    before = env.all_keys()
    assert connector.disclose(identifiers) == OperationResult()
    assert connector.erase(identifiers, grounds=["withdrawn"]).changed == 0
    assert connector.suspend(identifiers, grounds=["withdrawn"]).changed == 0
    assert connector.third_party_records(identifiers).records == []
    assert connector.stop_third_party_provision(identifiers, grounds=["objection"]).changed == 0
    assert env.all_keys() == before


@pytest.mark.parametrize(
    "value", ["1/../12", "..", ".", "a/b", "1\x00", "1\n", "x\u202e", "1\\..\\12", "a..b"]
)
def test_unsafe_identifier_values_are_refused(env: S3Harness, value: str) -> None:
    connector = env.connector()
    before = env.all_keys()
    for run in (
        lambda: connector.disclose({"customer_id": value}),
        lambda: connector.erase({**ALICE, "customer_id": value}, grounds=["withdrawn"]),
    ):
        with pytest.raises(FatalError, match="cannot be put in an S3 key") as err:
            run()
        assert len(value) < 3 or value not in str(err.value)
    assert env.all_keys() == before


def test_erase_deletes_only_the_subjects_objects_and_is_idempotent(env: S3Harness) -> None:
    connector = env.connector()
    bobs = env.keys_of(BOB)

    result = connector.erase(ALICE, grounds=["withdrawn"])

    assert result.changed == 4
    assert result.details["versioned"] is False
    assert "users/1/avatar.png" in result.details["keys"]
    assert env.keys_of(ALICE) == []
    assert env.keys_of(BOB) == bobs
    assert "exports/alice@example.com/profile.json.bak" in env.all_keys()  # not a configured key
    assert connector.disclose(ALICE).records == []
    assert connector.erase(ALICE, grounds=["withdrawn"]).changed == 0


def test_erase_on_a_versioned_bucket_removes_every_version(env: S3Harness) -> None:
    env.s3.put_bucket_versioning(Bucket=env.bucket, VersioningConfiguration={"Status": "Enabled"})
    env.put("users/1/profile.json", '{"name": "Alice v2"}')
    env.put("users/1/profile.json", '{"name": "Alice v3"}')
    env.put("users/1/gone.txt", "old", "text/plain")
    env.s3.delete_object(Bucket=env.bucket, Key="users/1/gone.txt")  # leaves a delete marker
    env.put("users/12/profile.json", '{"name": "Bob v2"}')
    bob_versions = [v for v in env.versions() if v[0].startswith("users/12/")]
    connector = env.connector()

    plan = connector.erase(ALICE, grounds=["withdrawn"], dry_run=True)
    assert plan.dry_run and plan.changed == 5
    assert sum(p["versions"] for p in plan.details["prefixes"]) == 8
    assert any(k == "users/1/gone.txt" for k, _ in env.versions())

    result = connector.erase(ALICE, grounds=["withdrawn"])

    assert result.changed == 5 and result.details["versioned"] is True
    left = env.versions()
    assert {k for k, _ in left if k.startswith("users/1/") or "alice" in k} == {
        "exports/alice@example.com/profile.json.bak",  # not a configured key
        "provisions/alice@example.com.jsonl",  # provision records are kept
    }
    assert [v for v in left if v[0].startswith("users/12/")] == bob_versions
    assert connector.erase(ALICE, grounds=["withdrawn"]).changed == 0


def test_a_dry_run_erasure_lists_and_changes_nothing(env: S3Harness) -> None:
    before = env.all_keys()
    result = env.connector().erase(ALICE, grounds=["withdrawn"], dry_run=True)
    assert result.dry_run and result.changed == 4
    assert result.details["keys"] == sorted(env.keys_of(ALICE))
    assert env.all_keys() == before


def test_suspend_tags_the_subjects_objects_once(env: S3Harness) -> None:
    connector = env.connector()
    env.s3.put_object_tagging(
        Bucket=env.bucket,
        Key="users/1/notes.txt",
        Tagging={"TagSet": [{"Key": "team", "Value": "support"}]},
    )

    assert connector.suspend(ALICE, grounds=["unlawful"], dry_run=True).changed == 4
    assert not env.is_suspended(connector, ALICE)
    result = connector.suspend(ALICE, grounds=["unlawful"])

    assert result.changed == 4 and result.fields == ["dsr-suspended"]
    assert env.is_suspended(connector, ALICE)
    assert not env.is_suspended(connector, BOB)
    tags = env.s3.get_object_tagging(Bucket=env.bucket, Key="users/1/notes.txt")["TagSet"]
    assert {"Key": "team", "Value": "support"} in tags
    assert connector.suspend(ALICE, grounds=["unlawful"]).changed == 0


def test_a_correction_rewrites_json_keys_and_keeps_tags_and_metadata(env: S3Harness) -> None:
    env.s3.put_object(
        Bucket=env.bucket,
        Key="users/1/profile.json",
        Body=b'{"name": "Alice Example", "phone": "01", "tier": "gold"}',
        ContentType="application/json",
        Metadata={"origin": "signup"},
        Tagging="team=support",
    )
    connector = env.connector()
    changes = [
        Change(field="name", value="Alice Corrected"),
        Change(field="tier", value="platinum"),
        Change(field="shoe_size", value=38),
    ]

    plan = connector.correct(ALICE, changes, dry_run=True)
    assert plan.changed == 2 and "Alice Corrected" not in json.dumps(
        connector.disclose(ALICE).records
    )
    result = connector.correct(ALICE, changes)

    assert result.changed == 2
    assert result.fields == ["name"]
    assert result.correction is not None
    assert result.correction.not_found == ["shoe_size"]
    assert result.correction.not_correctable == ["tier"]
    assert {(c.table, c.old, c.new) for c in result.correction.changes} == {
        ("users/1/profile.json", "Alice Example", "Alice Corrected"),
        ("exports/alice@example.com/profile.json", "Alice Example", "Alice Corrected"),
    }
    records = by_key(connector.disclose(ALICE))
    assert records["users/1/profile.json"]["content"] == {
        "name": "Alice Corrected",
        "phone": "01",
        "tier": "gold",
    }
    head = env.s3.head_object(Bucket=env.bucket, Key="users/1/profile.json")
    assert head["Metadata"] == {"origin": "signup"}
    assert head["ContentType"] == "application/json"
    tags = env.s3.get_object_tagging(Bucket=env.bucket, Key="users/1/profile.json")["TagSet"]
    assert tags == [{"Key": "team", "Value": "support"}]
    assert by_key(connector.disclose(BOB))["users/12/profile.json"]["content"] == {
        "name": "Bob Other",
        "phone": "012",
    }
    assert connector.correct(ALICE, changes).changed == 0


def test_third_party_records_and_stopping_provision(env: S3Harness) -> None:
    connector = env.connector()

    records = connector.third_party_records(ALICE)
    assert [r["recipient"] for r in records.records] == ["Acme Logistics", "Ad Partner"]
    assert records.details == {"provision_stopped": False}
    assert "Bob" not in json.dumps(records.records)

    assert connector.stop_third_party_provision(ALICE, grounds=["objection"], dry_run=True).changed
    assert "provisions/alice@example.com.stopped" not in env.all_keys()
    result = connector.stop_third_party_provision(ALICE, grounds=["objection"])

    assert result.changed == 1
    marker = env.s3.get_object(Bucket=env.bucket, Key="provisions/alice@example.com.stopped")
    assert json.loads(marker["Body"].read())["grounds"] == ["objection"]
    assert connector.third_party_records(ALICE).details == {"provision_stopped": True}
    assert connector.third_party_records(BOB).details == {"provision_stopped": False}
    assert connector.stop_third_party_provision(ALICE, grounds=["objection"]).changed == 0


def test_a_malformed_provision_log_is_fatal_and_names_no_data(env: S3Harness) -> None:
    env.put("provisions/alice@example.com.jsonl", '{"recipient": "Acme"}\n["alice"]\n')
    with pytest.raises(FatalError, match="line 2 of a provision-log object") as err:
        env.connector().third_party_records(ALICE)
    assert "alice" not in str(err.value)


def test_capabilities_follow_the_config(env: S3Harness) -> None:
    minimal = {
        "bucket": env.bucket,
        "prefixes": ["users/{customer_id}/"],
        "endpoint_url": env.proxy.url,
    }
    connector = S3Connector("uploads", minimal)
    assert connector.supported_kinds == {Kind.DISCLOSURE, Kind.ERASURE}
    with pytest.raises(NotSupported):
        connector.suspend(ALICE, grounds=["unlawful"])
    no_stop = S3Connector("uploads", {**minimal, "provision_log": "provisions/{email}.jsonl"})
    assert Kind.THIRD_PARTY_RECORDS in no_stop.supported_kinds
    assert Kind.THIRD_PARTY_STOP not in no_stop.supported_kinds
    assert env.connector().supported_kinds == frozenset(Kind) - {Kind.PURPOSE_NOTIFICATION}


@pytest.mark.parametrize(
    ("prefixes", "message"),
    [
        (["shared/"], "no placeholder"),
        (["users/{Email}/"], "not an identifier name"),
        (["users/{0}/"], "not an identifier name"),
        (["users/{}/"], "not an identifier name"),
        (["users/{email:>10}/"], "format spec"),
        (["users/{customer_id}-{email}/"], "only one placeholder"),
        (["users/{email"], "pattern"),
        (["/users/{email}/"], "leading '/'"),
        (["users//{email}/"], "empty segments"),
        (["../{email}/"], "'..'"),
    ],
)
def test_bad_key_patterns_are_config_errors(
    env: S3Harness, prefixes: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        env.connector(prefixes=prefixes)


def test_a_stop_marker_must_be_one_object_keyed_like_the_log(env: S3Harness) -> None:
    for marker in ("stops/{email}/", "stops/{customer_id}.stopped"):
        with pytest.raises(ConfigError, match="stop_marker"):
            env.connector(provision_log={"key": "p/{email}.jsonl", "stop_marker": marker})


def test_the_secret_key_never_shows(env: S3Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    connector = env.connector()
    connector.disclose(ALICE)
    with env.break_transiently(), pytest.raises(RetriableError) as err:
        connector.disclose(ALICE)
    shown = [repr(connector), repr(connector.config), str(connector.config), str(err.value)]
    shown += [r.getMessage() for r in caplog.records]
    assert not [s for s in shown if SECRET in s]
    with pytest.raises(ConfigError) as bad:
        env.connector(access_key_id=None)
    assert SECRET not in str(bad.value)


def test_a_503_is_retriable_and_carries_retry_after(env: S3Harness) -> None:
    connector = env.connector()
    with env.break_transiently():
        seen = env.proxy.requests
        with pytest.raises(RetriableError) as err:
            connector.disclose(ALICE)
        assert env.proxy.requests == seen + 1  # botocore did not retry on its own
        with pytest.raises(RetriableError):
            connector.erase(ALICE, grounds=["withdrawn"])
        assert not connector.check().ok
    assert err.value.retry_after == RETRY_AFTER
    assert "SlowDown" in str(err.value) and "alice" not in str(err.value)
    assert connector.disclose(ALICE).records  # and it recovers
    assert env.keys_of(ALICE)


def test_an_unreachable_endpoint_is_retriable(env: S3Harness) -> None:
    from services.broker import free_port

    connector = env.connector(endpoint_url=f"http://127.0.0.1:{free_port()}", connect_timeout_s=1)
    with pytest.raises(RetriableError, match="could not reach S3"):
        connector.disclose(ALICE)


def test_a_missing_bucket_is_a_config_error(env: S3Harness) -> None:
    connector = env.connector(bucket="no-such-bucket-here")
    with pytest.raises(ConfigError, match="NoSuchBucket"):
        connector.disclose(ALICE)


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (403, "AccessDenied", FatalError),
        (403, "InvalidAccessKeyId", ConfigError),
        (400, "InvalidArgument", FatalError),
        (429, "TooManyRequests", RetriableError),
        (500, "InternalError", RetriableError),
    ],
)
def test_s3_errors_are_classified(
    env: S3Harness, status: int, code: str, error: type[Exception]
) -> None:
    connector = env.connector()
    with env.proxy.answering(status, code), pytest.raises(error) as err:
        connector.erase(ALICE, grounds=["withdrawn"])
    assert code in str(err.value) and f"HTTP {status}" in str(err.value)
    assert type(err.value) is error
    assert env.keys_of(ALICE)
