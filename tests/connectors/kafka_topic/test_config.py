"""The Kafka topic connector's config: what it accepts, and how it says what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from connectors import ConfigError, FatalError
from connectors.kafka_topic import KafkaTopicConfig, KafkaTopicConnector, KeySpec

PASSWORD = "kafka-pw-never-shown-7d2e"

GOOD: dict[str, Any] = {
    "bootstrap_servers": "kafka-1:9092, kafka-2:9092",
    "topic": "customer-profiles",
    "key": {"identifier": "customer_id", "format": "customer:{customer_id}"},
}


def build(**overrides: Any) -> KafkaTopicConnector:
    return KafkaTopicConnector("profiles", {**GOOD, **overrides})


def test_a_minimal_config_and_its_defaults() -> None:
    cfg = build().config

    assert cfg.bootstrap_servers == ["kafka-1:9092", "kafka-2:9092"]
    assert cfg.value_format == "json" and cfg.correctable == [] and cfg.suspension is None
    assert cfg.security.security_protocol == "PLAINTEXT"
    assert cfg.key == [KeySpec(identifier="customer_id", format="customer:{customer_id}")]


@pytest.mark.parametrize(
    ("spec", "value", "key"),
    [
        ({"identifier": "customer_id"}, "1001", b"1001"),
        ({"identifier": "customer_id", "format": "c-{customer_id}-v1"}, "1001", b"c-1001-v1"),
        ({"identifier": "email", "format": "{{user}}:{email}"}, "a@x.jp", b"{user}:a@x.jp"),
        ({"identifier": "name", "format": "{name}"}, "山田", "山田".encode()),
        ({"identifier": "id", "format": "{id}"}, "{other}", b"{other}"),
    ],
)
def test_a_key_is_rendered_from_the_identifier(
    spec: dict[str, str], value: str, key: bytes
) -> None:
    parsed = KeySpec.model_validate(spec)
    assert parsed.render({spec["identifier"]: value}) == key


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"key": {"identifier": "customer_id", "format": "c:{email}"}}, "{email} is not the key's"),
        ({"key": {"identifier": "customer_id", "format": "c:{}"}}, "{} is not the key's"),
        ({"key": {"identifier": "customer_id", "format": "all"}}, "format has no placeholder"),
        ({"key": {"identifier": "customer_id", "format": "{customer_id!r}"}}, "without ! or :"),
        ({"key": {"identifier": "customer_id", "format": "{customer_id:>8}"}}, "without ! or :"),
        ({"key": {"identifier": "customer_id", "format": "{customer_id"}}, "not a valid template"),
        ({"key": []}, "key: List should have at least 1 item"),
        ({"key": [GOOD["key"], GOOD["key"]]}, "the same key twice"),
        ({"key": {"identifier": ["country_code", "phone"]}}, "a composite key needs a format"),
        (
            {"key": {"identifier": ["country_code", "phone"], "format": "{country_code}{phone}"}},
            "separate the parts",
        ),
        (
            {"key": {"identifier": ["country_code", "phone"], "format": "m:{phone}"}},
            "exactly once",
        ),
        (
            {"key": {"identifier": ["phone", "phone"], "format": "{phone}:{phone}"}},
            "each identifier once",
        ),
        ({"topic": "no spaces"}, "topic: String should match pattern"),
        ({"bootstrap_servers": "kafka-1"}, "'kafka-1' is not host:port"),
        ({"bootstrap_servers": ["kafka-1:99999"]}, "is not host:port"),
        ({"bootstrap_servers": []}, "bootstrap_servers: List should have at least 1 item"),
        ({"value_format": "avro"}, "value_format: Input should be 'json'"),
        ({"correctable": ["processing_suspended"], "suspension": {}}, "cannot also be correct"),
        ({"timeout_s": 0}, "timeout_s: Input should be greater than or equal to 1"),
        ({"security": {"security_protocol": "SASL_SSL"}}, "needs sasl_plain_username and"),
        ({"security": {"sasl_plain_password": "x", "sasl_plain_username": "u"}}, "needs security_"),
        ({"security": {"security_protocol": "TLS"}}, "security.security_protocol: Input"),
        ({"partitions": 3}, "partitions: Extra inputs are not permitted"),
    ],
)
def test_a_bad_config_is_a_config_error_naming_the_system_and_field(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build(**overrides)

    assert "system 'profiles': invalid kafka_topic connector config" in str(caught.value)
    assert message in str(caught.value)


COMPOSITE = {"identifier": ["country_code", "phone"], "format": "member:{country_code}:{phone}"}


def test_a_composite_key_needs_every_part_and_refuses_an_ambiguous_value() -> None:
    spec = KeySpec.model_validate(COMPOSITE)

    assert spec.parts == ("country_code", "phone")
    assert spec.render({"country_code": "81", "phone": "9012345678"}) == b"member:81:9012345678"
    assert spec.render({"phone": "9012345678"}) is None
    assert spec.render({"country_code": "81", "phone": ""}) is None
    # "81:90" + "12" and "81" + "90:12" would render the same key
    with pytest.raises(FatalError, match="separates the parts"):
        spec.render({"country_code": "81:90", "phone": "12"})
    assert build(key=COMPOSITE).config.key == [spec]


def test_the_password_is_kept_secret() -> None:
    security = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "dsr",
        "sasl_plain_password": PASSWORD,
    }
    connector = build(security=security)
    cfg = connector.config

    for shown in (
        repr(connector),
        repr(cfg),
        str(cfg),
        cfg.model_dump_json(),
        str(cfg.model_dump()),
    ):
        assert PASSWORD not in shown
    assert cfg.security.client_options()["sasl_plain_password"] == PASSWORD
    with pytest.raises(ConfigError) as caught:
        build(security={**security, "security_protocol": "PLAINTEXT"})
    assert PASSWORD not in str(caught.value)


def test_a_config_model_is_taken_as_is() -> None:
    cfg = KafkaTopicConfig.model_validate(GOOD)

    assert build().config == cfg
    assert KafkaTopicConnector("profiles", cfg).config is cfg
