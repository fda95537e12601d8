"""Settings read from the environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from services import settings
from services.settings import Settings, load


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
    assert settings.broker_heartbeat_s == max(0.5, expected / 6)


def test_a_bad_value_is_refused_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSR_TASK_ATTEMPTS", "many")
    monkeypatch.setenv("DSR_TOPIC_PREFIX", "a/b")
    with pytest.raises(SystemExit) as stopped:
        load()
    message = str(stopped.value)
    assert "DSR_TASK_ATTEMPTS='many'" in message
    assert "DSR_TOPIC_PREFIX='a/b'" in message


@pytest.mark.parametrize(
    "sender",
    [". <privacy@example.jp>", "privacy", "a@example.jp, b@example.jp", "<p@exampl\u00e9.jp>"],
)
def test_a_notice_sender_that_is_not_one_address_stops_the_process(
    monkeypatch: pytest.MonkeyPatch, sender: str
) -> None:
    """Refused when read, not by every notice the worker would then fail to send."""
    monkeypatch.setenv("DSR_NOTICE_FROM", sender)
    with pytest.raises(SystemExit) as stopped:
        load()
    assert f"DSR_NOTICE_FROM={sender!r}: Value error, not one e-mail address" in str(stopped.value)


def test_the_cli_names_a_bad_variable(tmp_path: Path) -> None:
    env = {**os.environ, "DSR_HOME": str(tmp_path), "DSR_SIGNATURE_MAX_AGE_S": "ten minutes"}
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "status", "req-1"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "DSR_SIGNATURE_MAX_AGE_S='ten minutes'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("value", "on"),
    [("0", False), ("off", False), ("No", False), ("1", True), ("yes", True), ("", True)],
)
def test_a_switch_is_on_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch, value: str, on: bool
) -> None:
    monkeypatch.setenv("DSR_SEAL_EVENTS", value)
    assert Settings().seal_events is on


def test_every_variable_is_documented_and_every_documented_one_is_read() -> None:
    documented = set(re.findall(r"^\| (DSR_[A-Z0-9_]+) \|", settings.__doc__ or "", re.M))
    assert documented == set(settings.variables())


def test_no_module_reads_its_settings_at_import() -> None:
    """Every module imports with every number unreadable; reading one then stops."""
    script = """
import importlib, pkgutil
for package in ("streams", "connectors", "services"):
    for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
        if not info.name.endswith("__main__") and ".migrations" not in info.name:
            importlib.import_module(info.name)
print("imported")
from streams import topics
print(topics.REQUESTS)
"""
    numbers = [
        name
        for name, f in Settings.model_fields.items()
        if {int, float} & {f.annotation, *get_args(f.annotation)}
    ]
    assert "topic_partitions" in numbers
    aliases = {n: Settings.model_fields[n].validation_alias or f"DSR_{n.upper()}" for n in numbers}
    env = {**os.environ, **{str(a): "unreadable" for a in aliases.values()}}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "imported"
    assert "DSR_TOPIC_PARTITIONS='unreadable'" in done.stderr
