"""The Kafka topic connector on the real embedded broker: what the conformance kit does not cover.

Latest-value-wins reading (several updates per key, tombstones, keys in more
than one partition, a large last batch), what each write leaves in the topic,
and how an unreachable or refusing cluster is reported.
"""

from __future__ import annotations

import logging

import pytest
from kafka import KafkaProducer

from connectors import (
    ConfigError,
    FatalError,
    NotSupported,
    OperationResult,
    RetriableError,
    dispatch,
)
from connectors.kafka_topic import KafkaTopicConnector
from connectors.kafka_topic.client import Write
from connectors.registry import load_connector_class
from services.broker import free_port
from streams.records import Change, CorrectionReport, FieldChange, Kind, Task
from tests.connectors.kafka_topic.fixtures import (
    ALICE,
    ALICE_NOW,
    BOB,
    BOB_NOW,
    CAROL,
    KEY,
    NOBODY,
    ProfilesTopic,
    key_of,
)

GROUNDS = ["withdrawn"]
PASSWORD = "kafka-pw-never-shown-7d2e"


def test_the_connector_is_registered() -> None:
    assert load_connector_class("kafka_topic") is KafkaTopicConnector


def test_check_reads_the_topic(profiles: ProfilesTopic) -> None:
    result = profiles.connector().check()
    assert result.ok, result.message
    assert f"topic {profiles.name!r} is readable: 3 partitions" in result.message


def test_check_reports_a_missing_topic_without_raising(profiles: ProfilesTopic) -> None:
    result = profiles.connector(topic="no-such-topic").check()
    assert not result.ok
    assert "'no-such-topic' does not exist" in result.message


def test_a_missing_topic_is_a_config_error(profiles: ProfilesTopic) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        profiles.connector(topic="no-such-topic").disclose(ALICE)


def test_disclose_returns_the_latest_value_of_the_subjects_key_only(
    profiles: ProfilesTopic,
) -> None:
    result = profiles.connector().disclose(ALICE)

    assert result.records == [{**ALICE_NOW, "_source": profiles.name}]
    assert result.fields == sorted(ALICE_NOW)
    assert profiles.connector().disclose(BOB).records == [{**BOB_NOW, "_source": profiles.name}]


@pytest.mark.parametrize(
    "identifiers",
    [CAROL, NOBODY, {"customer_id": "100"}, {"email": "alice@example.com"}, {}],
    ids=["tombstoned", "unknown", "a-key-prefix", "another-identifier", "none"],
)
def test_an_erased_or_unknown_subject_is_an_empty_result(
    profiles: ProfilesTopic, identifiers: dict[str, str]
) -> None:
    connector = profiles.connector()
    before = profiles.records()

    assert connector.disclose(identifiers) == OperationResult()
    assert connector.erase(identifiers, grounds=GROUNDS).changed == 0
    assert connector.correct(identifiers, [Change(field="name", value="X Y")]).changed == 0
    assert connector.suspend(identifiers, grounds=GROUNDS).changed == 0
    assert profiles.records() == before


def test_erase_writes_a_tombstone_where_the_latest_value_is(profiles: ProfilesTopic) -> None:
    connector = profiles.connector()
    (partition,) = profiles.latest(key_of(ALICE))

    result = connector.erase(ALICE, grounds=GROUNDS)

    assert result.changed == 1 and not result.dry_run
    # the older values stay in the log until compaction: the principal is told so
    assert result.pending_purge == 1
    assert any(r.key == key_of(ALICE) and r.value is not None for r in profiles.records())
    assert result.fields == sorted(ALICE_NOW)
    assert result.details == {
        "topics": [{"topic": profiles.name, "action": "tombstone", "records": 1}]
    }
    latest = profiles.latest(key_of(ALICE))
    assert list(latest) == [partition] and latest[partition].value is None
    assert connector.disclose(ALICE) == OperationResult()
    assert connector.disclose(BOB).records == [{**BOB_NOW, "_source": profiles.name}]


def test_erasing_again_writes_nothing(profiles: ProfilesTopic) -> None:
    connector = profiles.connector()
    connector.erase(ALICE, grounds=GROUNDS)
    after_first = profiles.records()

    again = connector.erase(ALICE, grounds=GROUNDS)

    assert (again.changed, again.pending_purge, again.fields) == (0, 0, [])
    assert profiles.records() == after_first


@pytest.mark.parametrize("kind", [Kind.ERASURE, Kind.CORRECTION, Kind.SUSPENSION])
def test_a_dry_run_writes_nothing_and_plans_what_a_run_writes(
    profiles: ProfilesTopic, kind: Kind
) -> None:
    connector = profiles.connector()
    before = profiles.records()

    def run(dry_run: bool) -> OperationResult:
        if kind is Kind.ERASURE:
            return connector.erase(ALICE, grounds=GROUNDS, dry_run=dry_run)
        if kind is Kind.CORRECTION:
            changes = [Change(field="phone", value="+81-3-1111-2222")]
            return connector.correct(ALICE, changes, dry_run=dry_run)
        return connector.suspend(ALICE, grounds=GROUNDS, dry_run=dry_run)

    planned = run(dry_run=True)

    assert planned.dry_run and planned.changed == 1
    assert profiles.records() == before
    done = run(dry_run=False)
    assert (done.changed, done.fields, done.details) == (
        planned.changed,
        planned.fields,
        planned.details,
    )
    assert len(profiles.records()) == len(before) + 1


def test_a_correction_writes_the_latest_value_changed(profiles: ProfilesTopic) -> None:
    connector = profiles.connector()
    changes = [
        Change(field="name", value="Alice Corrected"),
        Change(field="phone", value=ALICE_NOW["phone"]),  # already so
        Change(field="plan", value="platinum"),  # held, not correctable
        Change(field="shoe_size", value=24),  # not held
    ]

    result = connector.correct(ALICE, changes)

    assert result.changed == 1
    assert result.fields == ["name"]
    assert result.correction == CorrectionReport(
        changes=[
            FieldChange(
                table=profiles.name, field="name", old="Alice Example", new="Alice Corrected"
            )
        ],
        not_found=["shoe_size"],
        not_correctable=["plan"],
    )
    (latest,) = profiles.latest(key_of(ALICE)).values()
    assert latest.json() == {**ALICE_NOW, "name": "Alice Corrected"}
    assert latest.headers == [("content-type", b"application/json")]  # carried over
    assert connector.disclose(ALICE).records[0]["name"] == "Alice Corrected"
    assert connector.correct(ALICE, changes[:1]).changed == 0  # nothing new to write


def test_a_correctable_field_the_value_lacks_is_added(profiles: ProfilesTopic) -> None:
    connector = profiles.connector(correctable=["nickname"])

    result = connector.correct(ALICE, [Change(field="nickname", value="Ali")])

    assert result.changed == 1
    assert result.correction is not None
    assert result.correction.changes == [
        FieldChange(table=profiles.name, field="nickname", old=None, new="Ali")
    ]
    assert connector.disclose(ALICE).records[0]["nickname"] == "Ali"


def test_a_correction_to_another_json_type_is_a_change(profiles: ProfilesTopic) -> None:
    profiles.send(key_of(ALICE), {**ALICE_NOW, "vip": 1})
    profiles.flush()
    connector = profiles.connector(correctable=["vip"])

    assert connector.correct(ALICE, [Change(field="vip", value=True)]).changed == 1
    assert connector.disclose(ALICE).records[0]["vip"] is True


def test_suspension_sets_the_flag_once(profiles: ProfilesTopic) -> None:
    connector = profiles.connector()

    result = connector.suspend(ALICE, grounds=GROUNDS)

    assert (result.changed, result.fields) == (1, ["processing_suspended"])
    assert result.details == {
        "topics": [
            {
                "topic": profiles.name,
                "action": "flag",
                "field": "processing_suspended",
                "records": 1,
            }
        ]
    }
    assert connector.disclose(ALICE).records == [
        {**ALICE_NOW, "processing_suspended": True, "_source": profiles.name}
    ]
    assert connector.suspend(ALICE, grounds=GROUNDS).changed == 0
    assert connector.disclose(BOB).records[0]["processing_suspended"] is False


def test_kinds_the_config_does_not_enable_are_not_supported(profiles: ProfilesTopic) -> None:
    connector = profiles.connector(correctable=[], suspension=None)

    assert connector.supported_kinds == {Kind.DISCLOSURE, Kind.ERASURE}
    with pytest.raises(NotSupported):
        connector.correct(ALICE, [Change(field="name", value="X")])
    with pytest.raises(NotSupported):
        connector.suspend(ALICE, grounds=GROUNDS)


def test_a_key_in_several_partitions_is_read_and_erased_in_each(profiles: ProfilesTopic) -> None:
    """A producer with its own partitioner may write one key to two partitions;
    compaction keeps the latest of each, so both are the subject's data."""
    key = b"customer:2001"
    profiles.send(key, {"customer_id": "2001", "name": "Erin First"}, partition=0)
    profiles.send(key, {"customer_id": "2001", "name": "Erin Second"}, partition=2)
    profiles.flush()
    connector = profiles.connector()

    names = [r["name"] for r in connector.disclose({"customer_id": "2001"}).records]
    result = connector.erase({"customer_id": "2001"}, grounds=GROUNDS)

    assert names == ["Erin First", "Erin Second"]
    assert result.changed == 1  # one key
    assert result.details["topics"][0]["records"] == 2
    latest = profiles.latest(key)
    assert sorted(latest) == [0, 2] and all(r.value is None for r in latest.values())
    assert connector.disclose({"customer_id": "2001"}) == OperationResult()


def test_records_keyed_by_different_identifiers(profiles: ProfilesTopic) -> None:
    profiles.send(b"email:alice@example.com", {"email": "alice@example.com", "consent": "ads"})
    profiles.flush()
    keys = [KEY, {"identifier": "email", "format": "email:{email}"}]
    connector = profiles.connector(key=keys)
    both = {**ALICE, "email": "alice@example.com"}

    assert len(connector.disclose(both).records) == 2
    assert connector.disclose({"email": "alice@example.com"}).records == [
        {"email": "alice@example.com", "consent": "ads", "_source": profiles.name}
    ]
    assert connector.erase(both, grounds=GROUNDS).changed == 2
    assert connector.disclose(both) == OperationResult()


def live(profiles: ProfilesTopic, key: bytes) -> bool:
    """Whether ``key`` has a latest record, and it is not a tombstone."""
    latest = profiles.latest(key)
    return bool(latest) and all(r.value is not None for r in latest.values())


def test_a_composite_key_reaches_only_the_principal(profiles: ProfilesTopic) -> None:
    """Taro (+81) and Somchai (+66) share a national number; the key holds both parts."""
    taro = {"country_code": "81", "phone": "9012345678"}
    profiles.send(b"member:81:9012345678", {"name": "Taro Yamada"})
    profiles.send(b"member:66:9012345678", {"name": "Somchai Thai"})
    profiles.send(b"member:9012345678", {"name": "Keyed by phone alone"})
    profiles.flush()
    key = {"identifier": ["country_code", "phone"], "format": "member:{country_code}:{phone}"}
    connector = profiles.connector(key=key)

    assert [r["name"] for r in connector.disclose(taro).records] == ["Taro Yamada"]
    assert connector.disclose({"phone": "9012345678"}) == OperationResult()
    dry = connector.erase(taro, grounds=GROUNDS, dry_run=True)
    assert dry.changed == 1
    assert live(profiles, b"member:81:9012345678")
    assert connector.erase(taro, grounds=GROUNDS).changed == 1

    assert not live(profiles, b"member:81:9012345678")
    assert live(profiles, b"member:66:9012345678") and live(profiles, b"member:9012345678")
    somchai = {"country_code": "66", "phone": "9012345678"}
    assert [r["name"] for r in connector.disclose(somchai).records] == ["Somchai Thai"]


def test_a_bare_identifier_is_the_default_key(profiles: ProfilesTopic) -> None:
    profiles.send(b"3001", {"customer_id": "3001", "name": "Frank Bare"})
    profiles.flush()
    connector = profiles.connector(key={"identifier": "customer_id"})

    assert connector.disclose({"customer_id": "3001"}).records[0]["name"] == "Frank Bare"
    assert connector.disclose(ALICE) == OperationResult()


def test_the_last_of_many_updates_in_one_batch_wins(profiles: ProfilesTopic) -> None:
    """The embedded broker reports an end offset inside the last batch, and a poll
    returns at most 500 records; the whole batch must still be read."""
    producer = KafkaProducer(
        bootstrap_servers=profiles.broker.bootstrap, batch_size=1 << 20, linger_ms=200
    )
    try:
        for i in range(1200):
            producer.send(profiles.name, key=key_of(BOB), value=b'{"visits": %d}' % i)
        producer.flush(timeout=10)
    finally:
        producer.close()

    assert profiles.connector().disclose(BOB).records[0]["visits"] == 1199


def test_a_value_that_is_not_a_json_object_is_fatal_and_not_shown(
    profiles: ProfilesTopic,
) -> None:
    profiles.send(key_of(ALICE), b"phone=+81-3-0000-0001")
    profiles.flush()
    connector = profiles.connector()

    with pytest.raises(FatalError, match="not a JSON object") as caught:
        connector.disclose(ALICE)

    assert "0000-0001" not in str(caught.value)
    assert connector.erase(ALICE, grounds=GROUNDS).changed == 1  # erasure needs no decoding
    assert connector.disclose(ALICE) == OperationResult()


def test_an_unreachable_cluster_is_retriable(profiles: ProfilesTopic) -> None:
    connector = profiles.connector(bootstrap_servers=f"127.0.0.1:{free_port()}")

    with pytest.raises(RetriableError, match="unreachable or slow"):
        connector.disclose(ALICE)
    with pytest.raises(RetriableError):
        connector.erase(ALICE, grounds=GROUNDS)
    check = connector.check()
    assert not check.ok and "KafkaTimeoutError" in check.message


def test_a_write_that_times_out_is_retriable_and_a_retry_completes_it(
    profiles: ProfilesTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = profiles.connector()
    connector.suspend(BOB, grounds=GROUNDS)  # the producer is connected
    topic = connector._topic
    write = topic.write

    def write_while_paused(writes: list[Write]) -> None:
        with profiles.paused():
            write(writes)

    monkeypatch.setattr(topic, "write", write_while_paused)
    with pytest.raises(RetriableError, match="unreachable or slow"):
        connector.erase(ALICE, grounds=GROUNDS)
    monkeypatch.undo()

    connector.erase(ALICE, grounds=GROUNDS)  # the runner's retry
    assert connector.disclose(ALICE) == OperationResult()
    assert [r.value for r in profiles.latest(key_of(ALICE)).values()] == [None]


def test_a_refused_login_is_fatal_and_the_password_is_never_shown(
    profiles: ProfilesTopic, caplog: pytest.LogCaptureFixture
) -> None:
    """The embedded broker refuses every SASL login, as a cluster refuses a wrong one."""
    security = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "dsr",
        "sasl_plain_password": PASSWORD,
    }
    with caplog.at_level(logging.DEBUG):
        connector = profiles.connector(security=security)
        with pytest.raises(FatalError, match="refused the connector's login") as caught:
            connector.disclose(ALICE)
        check = connector.check()

    assert not isinstance(caught.value, RetriableError)
    assert not check.ok and "refused" in check.message
    shown = [
        caplog.text,
        str(caught.value),
        check.message,
        repr(connector),
        repr(connector.config),
        str(connector.config),
        connector.config.model_dump_json(),
    ]
    assert not [s for s in shown if PASSWORD in s]


def test_a_task_with_discovered_identifiers_reaches_every_key(profiles: ProfilesTopic) -> None:
    """A later wave's task carries the customer ids that earlier systems found."""
    profiles.send(b"customer:2002", {"customer_id": "2002", "name": "Alice Second Account"})
    profiles.flush()
    task = Task(
        request_id="req-kafka-topic-1",
        task_id=Task.make_id("req-kafka-topic-1", "profiles", Kind.ERASURE, 1),
        system="profiles",
        kind=Kind.ERASURE,
        wave=1,
        identifiers={"email": "alice@example.com"},
        identities=[{"customer_id": "1001"}, {"customer_id": "2002"}],
        grounds=GROUNDS,
    )
    connector = profiles.connector()

    result = dispatch(connector, task)

    assert result.changed == 2
    assert connector.disclose({"customer_id": "2002"}) == OperationResult()
    assert connector.disclose(BOB).records != []
