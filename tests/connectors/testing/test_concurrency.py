"""The kit's check of calls at once: a connector that keeps one connection fails it."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.testing.concurrency import ConcurrencyTests
from tests.connectors.testing.fixtures import OneConnectionKVHarness, kit_of


def test_a_connector_that_keeps_one_connection_fails_naming_the_error_and_the_way_out(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with (
        kit_of(OneConnectionKVHarness, request, tmp_path) as kit,
        pytest.raises(pytest.fail.Exception) as caught,
    ):
        ConcurrencyTests().test_reads_at_once_answer_as_one_at_a_time(kit)
    message = str(caught.value)
    assert "connector.disclose() for the subject, called from 8 threads at once" in message
    assert "raised ProgrammingError" in message
    assert "leave `concurrency` at 1" in message
