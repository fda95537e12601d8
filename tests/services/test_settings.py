"""Settings read from the environment."""

from __future__ import annotations

import pytest

from services.settings import Settings


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, 4.0),  # the embedded broker: its first join waits half of it
        ({"DSR_KAFKA_BOOTSTRAP": "kafka:9092"}, 6.0),  # Apache Kafka's least, by default
        ({"DSR_KAFKA_BOOTSTRAP": "kafka:9092", "DSR_SESSION_TIMEOUT_S": "15"}, 15.0),
        ({"DSR_SESSION_TIMEOUT_S": "3"}, 3.0),
    ],
)
def test_the_session_timeout_suits_the_broker(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: float
) -> None:
    for name in ("DSR_KAFKA_BOOTSTRAP", "DSR_SESSION_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.session_timeout_s == expected
    assert settings.heartbeat_interval_s == max(0.5, expected / 6)
