"""What ``dsr up`` hands the processes it starts, by broker."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.broker import EmbeddedBroker
from services.settings import Settings
from services.stack import Stack


@pytest.fixture
def embedded() -> Iterator[EmbeddedBroker]:
    """A broker as the stack records it; nothing is asked of its process here."""
    process = subprocess.Popen(["true"])
    yield EmbeddedBroker(port=9, process=process)
    process.wait()


def _fetch_wait_of_a_child(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> int:
    """The fetch wait a process started with ``stack.env()`` reads."""
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    return Settings().fetch_max_wait_ms


@pytest.mark.parametrize("unset", [None, ""])  # an empty variable counts as unset
def test_on_the_embedded_broker_a_fetch_waits_50_ms(
    tmp_path: Path, embedded: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch, unset: str | None
) -> None:
    if unset is None:
        monkeypatch.delenv("DSR_FETCH_MAX_WAIT_MS", raising=False)
    else:
        monkeypatch.setenv("DSR_FETCH_MAX_WAIT_MS", unset)
    stack = Stack(Settings(home=tmp_path), broker=embedded)
    assert _fetch_wait_of_a_child(stack, monkeypatch) == 50


def test_on_apache_kafka_a_fetch_waits_kafkas_500_ms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DSR_FETCH_MAX_WAIT_MS", raising=False)
    stack = Stack(Settings(home=tmp_path, kafka_bootstrap="kafka-1:9092"))
    assert _fetch_wait_of_a_child(stack, monkeypatch) == 500


def test_a_fetch_wait_set_by_the_operator_is_kept_on_either_broker(
    tmp_path: Path, embedded: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSR_FETCH_MAX_WAIT_MS", "200")
    on_kafka = Stack(Settings(home=tmp_path, kafka_bootstrap="kafka-1:9092"))
    assert _fetch_wait_of_a_child(on_kafka, monkeypatch) == 200
    on_tansu = Stack(Settings(home=tmp_path), broker=embedded)
    assert _fetch_wait_of_a_child(on_tansu, monkeypatch) == 200
