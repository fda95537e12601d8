"""The provision event carries every Art. 29 / Art. 30 item a record needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from services.provisions.records import (
    ProvisionEvent,
    RecordSubject,
    counterparty_key,
    subject_digests,
)
from streams.records import Subject
from tests.services.provisions.fixtures import (
    ALICE_DIGEST,
    as_digests,
    digest,
    make,
    provision,
    receipt,
)

SCHEMA = json.loads((Path(__file__).parents[3] / "schemas" / "provision-event.v1.json").read_text())


def test_a_full_provision_and_receipt_validate() -> None:
    out = make(
        provision(
            cross_border={
                "country": "United States",
                "protection_system": "sectoral laws",
                "recipient_measures": "a data processing agreement",
            }
        )
    )
    assert out.cross_border is not None and out.cross_border.country == "United States"
    assert make(receipt()).ppc_publication == "PPC-2025-0001"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (provision(basis=None), "basis"),
        (provision(consent=None), "fact of consent"),
        (receipt(acquired_how=None), "acquired"),
        (receipt(ppc_publication=None), "PPC publication"),
        (receipt(counterparty={"name": "No Address K.K."}), "address"),
        (provision(last_provided_on="2026-01-01"), "before provided_on"),
        (provision(items=[]), "at least 1"),
        (provision(flow="sold_it"), "flow"),
        (provision(cross_border={"country": "US"}), "protection_system"),
    ],
)
def test_a_record_missing_an_item_is_refused(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProvisionEvent.model_validate(body)


def test_out_of_scope_flows_need_no_basis() -> None:
    assert make(provision(flow="entrustment", basis=None, consent=None)).basis is None


def test_identifiers_are_digested_normalised_and_never_kept() -> None:
    one = subject_digests({"email": " Alice@Example.JP "})
    assert one == subject_digests({"EMAIL": "alice@example.jp"})
    assert subject_digests({"customer_id": "C-1"}) != subject_digests({"customer_id": "c-1"})
    assert all(len(d) == 64 and "alice" not in d for d in one)
    assert counterparty_key("  Acme   Logistics K.K. ") == counterparty_key("acme logistics k.k.")


def test_a_subject_sent_as_digests_is_the_subject_sent_as_identifiers() -> None:
    clear = make(provision(subject={"email": " Alice@Example.JP ", "customer_id": "C-1"}))
    sent = make(as_digests(provision(), ALICE_DIGEST, digest("customer_id:C-1")))
    assert sent.subject.identifiers is None
    assert sent.subject.digest_set() == clear.subject.digest_set()
    assert make(provision()).subject.digest_set() == {ALICE_DIGEST}


def test_the_digest_form_of_a_record_names_nobody_and_is_one_per_record() -> None:
    clear = make(provision(subject={"email": "alice@example.jp", "customer_id": "C-1"}))
    digested = clear.digested()
    assert digested.subject.identifiers is None
    assert digested.subject.digests == sorted(clear.subject.digest_set())
    assert "alice" not in digested.model_dump_json()
    assert digested.model_dump(exclude={"subject"}) == clear.model_dump(exclude={"subject"})
    # however the digests were sent (order, repeats), the digest form is the same
    unsorted = make(
        as_digests(provision(), *reversed(digested.subject.digests or []), ALICE_DIGEST)
    )
    assert unsorted.digested() == digested == digested.digested()


@pytest.mark.parametrize(
    "subject",
    [
        {"identifiers": {"email": "alice@example.jp"}, "digests": ["0" * 64]},
        {},
        {"identifiers": None, "digests": None},
    ],
    ids=["both", "neither", "both-null"],
)
def test_a_subject_needs_identifiers_or_digests_not_both(subject: dict[str, Any]) -> None:
    body = provision() | {"subject": subject}
    with pytest.raises(ValidationError, match="identifiers or their digests: exactly one"):
        ProvisionEvent.model_validate(body)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, SCHEMA)


@pytest.mark.parametrize(
    ("digests", "message"),
    [
        (["A" * 64], "pattern"),  # uppercase hex
        (["0" * 63], "pattern"),
        (["0" * 65], "pattern"),
        (["g" * 64], "pattern"),
        (["alice@example.jp"], "pattern"),
        ([], "at least 1"),
        (["0" * 64] * 65, "at most 64"),
    ],
    ids=["uppercase", "short", "long", "not-hex", "clear", "empty", "too-many"],
)
def test_a_bad_digest_is_refused(digests: list[str], message: str) -> None:
    body = provision() | {"subject": {"digests": digests}}
    with pytest.raises(ValidationError, match=message):
        ProvisionEvent.model_validate(body)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, SCHEMA)


def test_the_published_schema_takes_both_forms() -> None:
    jsonschema.validate(provision(), SCHEMA)
    jsonschema.validate(as_digests(provision()), SCHEMA)


def test_identifiers_are_constrained_as_a_request_subject_s() -> None:
    def constraints(model: type[Any]) -> dict[str, Any]:
        field = model.model_json_schema()["properties"]["identifiers"]
        form = field["anyOf"][0] if "anyOf" in field else field
        return {k: v for k, v in form.items() if k not in ("title", "description")}

    assert constraints(RecordSubject) == constraints(Subject)
