"""The provision event carries every Art. 29 / Art. 30 item a record needs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.provisions.records import ProvisionEvent, counterparty_key, subject_digests
from tests.services.provisions.fixtures import make, provision, receipt


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
