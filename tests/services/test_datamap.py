"""Loading the data map: clear errors for cycles, unknown identifiers and bad references."""

from __future__ import annotations

import pytest

from services.datamap import DataMapError, find_cycle, load, parse

GOOD = """
subject_identifiers: [email]
purposes: [{id: support, description: Support}]
systems:
  crm: {connector: sql, identifiers: [email], discovers: [customer_id], purposes: [support]}
  orders: {connector: sql, identifiers: [customer_id], discovers: [order_id]}
  shipping: {connector: sql, identifiers: [order_id]}
  cache: {connector: sql, identifiers: [email], erase_after: [crm]}
"""


def test_a_good_data_map_loads_with_its_dependencies() -> None:
    dm = parse(GOOD)
    # a system that supplied another's key is acted on after it; erase_after as written
    assert dm.dependencies() == {
        "crm": {"orders"},
        "orders": {"shipping"},
        "shipping": set(),
        "cache": {"crm"},
    }


def test_an_identity_source_erased_after_its_dependant_loads() -> None:
    dm = parse(
        "subject_identifiers: [email]\n"
        "systems:\n"
        "  crm: {connector: sql, identifiers: [email], discovers: [phone],\n"
        "        erase_after: [loyalty]}\n"
        "  loyalty: {connector: sql, identifiers: [phone]}\n"
    )
    assert dm.dependencies() == {"crm": {"loyalty"}, "loyalty": set()}


def test_systems_that_discover_each_other_load() -> None:
    """The resolve phase reaches closure; the request's own identifiers break the tie."""
    dm = parse(
        "systems:\n"
        "  crm: {connector: sql, identifiers: [email], discovers: [phone]}\n"
        "  loyalty: {connector: sql, identifiers: [phone], discovers: [email]}\n"
    )
    # known by email: the CRM found loyalty's phone, so loyalty is acted on first
    assert dm.discovery_order(["email"]) == {"crm": {"loyalty"}, "loyalty": set()}
    assert dm.discovery_order(["phone"]) == {"crm": set(), "loyalty": {"crm"}}


def test_an_order_that_cannot_be_met_is_refused() -> None:
    # loyalty must be erased after the CRM, which must wait for loyalty, whose key it found
    with pytest.raises(DataMapError, match="cycle: loyalty → crm → loyalty"):
        parse(
            "subject_identifiers: [email]\n"
            "systems:\n"
            "  crm: {connector: sql, identifiers: [email], discovers: [phone]}\n"
            "  loyalty: {connector: sql, identifiers: [phone], erase_after: [crm]}\n"
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD.replace("discovers: [order_id]", "discovers: []"),
            "system 'shipping' needs ['order_id'], but no request carries them",
        ),
        (
            GOOD.replace(
                "identifiers: [email], discovers: [customer_id]",
                "identifiers: [order_id], discovers: [customer_id]",
            ),
            "system 'crm' needs ['order_id'], but no identifier a request carries",
        ),
        (GOOD.replace("erase_after: [crm]", "erase_after: [crm, cache]"), "cycle: cache → cache"),
        (
            GOOD.replace("erase_after: [crm]", "erase_after: [billing]"),
            "erase_after names unknown systems ['billing']",
        ),
        (GOOD.replace("purposes: [support]}", "purposes: [sales]}"), "undeclared purposes"),
        (GOOD.replace("crm:", "CRM System:"), "use lowercase"),
        ("systems: {}", "systems"),
        ("- just a list", "expected a mapping"),
        ("systems: {a: {connector: sql}}", "systems.a.identifiers"),
        ("systems: [unclosed", "not valid YAML"),
    ],
)
def test_bad_data_maps_are_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(DataMapError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(text)


def test_find_cycle_returns_the_path() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_environment_variables_are_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_URL", "sqlite:///crm.db")
    dm = parse(
        "systems: {crm: {connector: sql, identifiers: [email], config: {url: '${CRM_URL}'}}}"
    )
    assert dm.systems["crm"].config["url"] == "sqlite:///crm.db"


def test_missing_file_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(DataMapError, match="cannot read data map"):
        load("/nonexistent/datamap.yaml")
