"""Composite keys: a loyalty programme keyed by (country_code, phone), on SQLite,
PostgreSQL (when reachable) and a private MariaDB server.

Next to the principal (Taro, +81 9012345678) sit Somchai, who has the same national
number in Thailand, and Hanako, whose key is made of parts of Taro's two phones.
Every test reads what is left in the tables themselves.
"""

from __future__ import annotations

from typing import Any

from streams.records import Change
from tests.connectors.sql.fixtures import TARO_EMAIL, TARO_JP, Loyalty


def by_source(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        out.setdefault(record["_source"], []).append(record)
    return out


def test_disclosure_matches_every_part_of_the_key(loyalty: Loyalty) -> None:
    result = loyalty.connector().disclose(TARO_JP)

    found = by_source(result.records)
    assert found["loyalty_members"] == [
        {
            "country_code": "81",
            "phone": "9012345678",
            "name": "Taro Yamada",
            "points": 120,
            "_source": "loyalty_members",
        }
    ]
    assert [r["reward"] for r in found["rewards"]] == ["JP voucher"]
    assert "accounts" not in found  # keyed by email, which the call does not carry
    assert "Somchai" not in repr(result.records)
    assert result.identities == [{"country_code": "81", "phone": "9012345678", "customer_id": "42"}]
    assert result.discovered_identifiers == {}


def test_a_call_without_every_part_skips_the_table(loyalty: Loyalty) -> None:
    connector = loyalty.connector()
    assert connector.disclose({"phone": "9012345678"}).records == []
    assert connector.erase({"phone": "9012345678"}, grounds=["withdrawn"]).changed == 0
    assert connector.disclose({"country_code": "81", "phone": "0000000000"}).records == []
    assert loyalty.ids("loyalty_members") == [1, 2, 3, 4]


def test_resolution_never_mixes_the_parts_of_two_rows(loyalty: Loyalty) -> None:
    """Taro's two accounts give (81, 9012345678) and (66, 811112222). Combining their
    parts would also find Somchai (66, 9012345678) and Hanako (81, 811112222)."""
    result = loyalty.connector().disclose(TARO_EMAIL)

    found = by_source(result.records)
    assert [r["name"] for r in found["loyalty_members"]] == ["Taro Yamada", "Taro in Bangkok"]
    assert [r["reward"] for r in found["rewards"]] == ["JP voucher", "TH voucher"]
    assert result.identities == [
        {"email": "taro@example.jp", "country_code": "81", "phone": "9012345678"},
        {"email": "taro@example.jp", "country_code": "66", "phone": "811112222"},
        {"country_code": "81", "phone": "9012345678", "customer_id": "42"},
        {"country_code": "66", "phone": "811112222", "customer_id": "43"},
    ]


def test_a_dry_run_erasure_counts_only_the_principals_rows(loyalty: Loyalty) -> None:
    before = {t: loyalty.rows(t) for t in ("loyalty_members", "rewards")}

    result = loyalty.connector().erase(TARO_JP, grounds=["withdrawn"], dry_run=True)

    assert result.dry_run
    assert result.details["tables"] == [
        {"table": "loyalty_members", "action": "delete", "rows": 1},
        {"table": "rewards", "action": "delete", "rows": 1},
    ]
    assert result.changed == 2
    assert {t: loyalty.rows(t) for t in before} == before


def test_erasure_deletes_only_the_principals_rows(loyalty: Loyalty) -> None:
    connector = loyalty.connector()

    result = connector.erase(TARO_JP, grounds=["withdrawn"])

    assert result.changed == 2
    assert loyalty.ids("loyalty_members") == [2, 3, 4]
    assert loyalty.ids("rewards") == [2, 3, 4]
    assert loyalty.ids("accounts") == [1, 2, 3]  # not erasable, and keyed by email
    assert connector.erase(TARO_JP, grounds=["withdrawn"]).changed == 0


def test_correction_touches_only_the_principal_and_names_what_it_cannot_set(
    loyalty: Loyalty,
) -> None:
    changes = [
        Change(field="name", value="Taro Corrected"),
        Change(field="points", value="99999"),
        Change(field="shoe_size", value="27"),
    ]

    result = loyalty.connector().correct(TARO_JP, changes)

    assert result.changed == 1
    assert result.correction is not None
    assert result.correction.not_correctable == ["points"]  # a column, not correctable
    assert result.correction.not_found == ["shoe_size"]  # no such field anywhere
    names = {r["id"]: r["name"] for r in loyalty.rows("loyalty_members")}
    assert names == {
        1: "Taro Corrected",
        2: "Somchai Thai",
        3: "Taro in Bangkok",
        4: "Hanako Look-alike",
    }
    assert [r["points"] for r in loyalty.rows("loyalty_members")] == [120, 900, 5, 60]


def test_suspension_flags_only_the_principals_row(loyalty: Loyalty) -> None:
    result = loyalty.connector().suspend(TARO_JP, grounds=["objection"])

    assert result.changed == 1
    assert [r["id"] for r in loyalty.rows("loyalty_members") if r["suspended"]] == [1]


def test_third_party_records_and_stop_match_every_part(loyalty: Loyalty) -> None:
    connector = loyalty.connector()

    records = connector.third_party_records(TARO_JP).records
    dry = connector.stop_third_party_provision(TARO_JP, grounds=["objection"], dry_run=True)
    assert [r["stopped"] for r in loyalty.rows("loyalty_provisions")] == [False, False]
    stop = connector.stop_third_party_provision(TARO_JP, grounds=["objection"])

    assert records == [{"recipient": "Acme Air", "_source": "loyalty_provisions"}]
    assert dry.changed == 1 and stop.changed == 1
    assert [r["stopped"] for r in loyalty.rows("loyalty_provisions")] == [True, False]


def test_check_names_a_missing_key_column(loyalty: Loyalty) -> None:
    assert loyalty.connector().check().ok
    cfg = loyalty.config()
    cfg["tables"][1]["key"][0]["column"] = "country"
    cfg["provision_log"]["key"][1]["column"] = "msisdn"

    check = loyalty.connector(cfg).check()

    assert not check.ok
    assert "loyalty_members: no key column(s) ['country']" in check.message
    assert "loyalty_provisions: no key column(s) ['msisdn']" in check.message
