"""The kit's trace check: an erasure that leaves an index behind fails it."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.testing import conformance_tests
from connectors.testing.traces import TraceTests, forms, traces
from streams.records import Kind
from tests.connectors.testing.fixtures import KVHarness, LeakyKVHarness, kit_of

# A correct connector passes the whole kit, the trace check included.
TestKVConformance = conformance_tests(KVHarness)


def test_an_index_left_behind_fails_the_trace_check_naming_it(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with kit_of(LeakyKVHarness, request, tmp_path) as kit:
        # What disclosure sees is empty after the leaky erasure: only the raw view shows it.
        with pytest.raises(pytest.fail.Exception) as caught:
            TraceTests().test_erasure_leaves_no_trace_in_raw_storage(kit)
        assert kit.read(Kind.DISCLOSURE, kit.seeded.subject).records == []
    message = str(caught.value)
    assert "after erase(), the system still stores the subject's identifiers" in message
    assert "index-by-email:alice.kv@example.com" in message
    assert "item 0, key" in message
    assert "session:" not in message  # the session itself was erased
    assert "bob.kv" not in message  # the other person's keys are not traces


def test_a_view_that_never_shows_the_subject_fails(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    class Blind(KVHarness):
        def raw_view(self) -> list[dict[str, str]]:
            return [{"k": "v"}]

    with (
        kit_of(Blind, request, tmp_path) as kit,
        pytest.raises(pytest.fail.Exception, match="shows none of the subject's"),
    ):
        TraceTests().test_erasure_leaves_no_trace_in_raw_storage(kit)


@pytest.mark.parametrize(
    ("given", "stored", "how"),
    [
        ("Alice.Kv@example.com", "index:ALICE.KV@EXAMPLE.COM", "as given"),  # any case
        (" alice.kv@example.com\n", '{"e": "alice.kv@example.com"}', "stripped"),
        ("alice.kv@example.com", "/users?email=alice.kv%40example.com", "URL-encoded"),
        ("+81-3-0000-0001", "tel:81300000001", "digits only"),
        ("山田 太郎", '{"name": "\\u5c71\\u7530 \\u592a\\u90ce"}', "JSON-escaped"),
    ],
)
def test_identifiers_are_found_in_their_common_forms(given: str, stored: str, how: str) -> None:
    [found] = traces([{"key": stored.encode()}], {"id": given})
    assert f"({how}) in item 0['key']" in found


def test_short_and_unrelated_values_are_not_traces() -> None:
    assert forms("1") == {}
    assert "digits only" not in forms("A-1234567").values()
    assert traces(["bob@example.com", b"+81-3-9999-0002", None], {"email": "alice@x.jp"}) == []
