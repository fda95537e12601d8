"""Fuzzed events: intake and aggregation never crash, never run a bad event, and say why."""

from __future__ import annotations

import itertools
import json
import typing
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.demo.scenario import TARO, event
from services.signing import Keyring
from streams import topics
from streams.agents import aggregate, decode, intake
from streams.agents.decode import PoisonEvent
from streams.context import Pipeline
from streams.records import RejectedEvent
from tests.streams.agents.fixtures import body, to

REASONS = set(typing.get_args(RejectedEvent.model_fields["reason_code"].annotation))
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
KEYRING = Keyring({"ops": b"k" * 32})
VALID = event("fuzz", "erasure", TARO, grounds=["no_longer_needed"])
DELETE = object()
ids = itertools.count()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _check(p: Pipeline, out: list[Any]) -> None:
    assert {o.topic for o in out} <= {topics.ACCEPTED, topics.REJECTED, topics.RESPONSES}
    for rejected in to(topics.REJECTED, out):
        assert body(rejected)["reason_code"] in REASONS
    for accepted in to(topics.ACCEPTED, out):
        assert p.ledger.request(decode.accepted(accepted.value)) is not None


@FUZZ
@given(raw=st.binary(max_size=512) | json_values.map(lambda v: json.dumps(v).encode()))
def test_intake_answers_any_bytes_with_a_decision_or_a_reason(
    pipeline: Pipeline, raw: bytes
) -> None:
    _check(pipeline, intake.handle_request(pipeline, raw))


@FUZZ
@given(key=st.sampled_from(sorted(VALID)), value=json_values | st.just(DELETE))
def test_a_mutated_event_is_admitted_or_rejected_with_a_reason(
    pipeline: Pipeline, key: str, value: Any
) -> None:
    obj = {**VALID, "request_id": f"m-{next(ids)}"}
    if value is DELETE:
        del obj[key]
    else:
        obj[key] = value
    _check(pipeline, intake.handle_request(pipeline, json.dumps(obj).encode()))


@pytest.fixture
def signed(pipeline: Pipeline) -> Pipeline:
    return replace(pipeline, keyring=KEYRING)


@FUZZ
@given(key=st.sampled_from(sorted(VALID)), value=json_values)
def test_any_change_after_signing_is_caught(signed: Pipeline, key: str, value: Any) -> None:
    original = {**VALID, "request_id": f"s-{next(ids)}"}
    headers = KEYRING.signer().headers(json.dumps(original).encode())
    changed = {**original, key: value}
    out = intake.handle_request(signed, json.dumps(changed).encode(), headers)
    if changed == original:
        assert [o.topic for o in out] == [topics.ACCEPTED]
    else:
        [rejected] = out
        assert body(rejected)["reason_code"] == "bad_signature"


@FUZZ
@given(raw=st.binary(max_size=512) | json_values.map(lambda v: json.dumps(v).encode()))
def test_aggregation_turns_a_malformed_result_into_a_poison_event(
    pipeline: Pipeline, raw: bytes
) -> None:
    try:
        out = aggregate.handle_result(pipeline, raw)
    except PoisonEvent as exc:
        assert exc.detail
    else:
        assert out == []  # a valid result for a request the ledger does not know
