"""A composite key in S3: each part of (country_code, phone) fills a key segment of its
own, so a member's objects are found only when every part matches.

Next to Taro (+81 9012345678) sit Somchai, with the same national number in Thailand,
and an 81 number that starts with Taro's.
"""

from __future__ import annotations

import json

import pytest

from connectors import ConfigError
from tests.connectors.s3.fixtures import S3Harness

TARO = {"country_code": "81", "phone": "9012345678"}
PREFIXES = ["loyalty/{country_code}/{phone}/"]
LOG = {"key": "loyalty-log/{country_code}/{phone}.jsonl"}

TARO_KEYS = ["loyalty/81/9012345678/member.json", "loyalty/81/9012345678/card.txt"]
OTHER_KEYS = [
    "loyalty/66/9012345678/member.json",  # Somchai: same phone, another country
    "loyalty/81/90123456789/member.json",  # a longer number that starts with Taro's
    "loyalty/9012345678/81/member.json",  # the parts the other way round
]


@pytest.fixture
def members(env: S3Harness) -> S3Harness:
    for key in TARO_KEYS + OTHER_KEYS:
        env.put(key, json.dumps({"member": key.split("/")[1:3]}))
    env.put("loyalty-log/81/9012345678.jsonl", '{"recipient": "Acme Air"}\n', "")
    env.put("loyalty-log/66/9012345678.jsonl", '{"recipient": "Somchai Air"}\n', "")
    return env


def loyalty_keys(env: S3Harness) -> list[str]:
    return [k for k in env.all_keys() if k.startswith("loyalty")]


def test_disclosure_needs_and_matches_every_part(members: S3Harness) -> None:
    connector = members.connector(prefixes=PREFIXES, provision_log=LOG)

    found = sorted(r["key"] for r in connector.disclose(TARO).records)
    log = connector.third_party_records(TARO).records

    assert found == sorted(TARO_KEYS)
    assert [r["recipient"] for r in log] == ["Acme Air"]
    assert connector.disclose({"phone": "9012345678"}).records == []
    assert connector.disclose({"country_code": "81"}).records == []


def test_erasure_and_its_dry_run_touch_only_the_principals_objects(members: S3Harness) -> None:
    connector = members.connector(prefixes=PREFIXES)
    before = loyalty_keys(members)

    dry = connector.erase(TARO, grounds=["withdrawn"], dry_run=True)
    assert dry.changed == 2 and sorted(dry.details["keys"]) == sorted(TARO_KEYS)
    assert loyalty_keys(members) == before

    assert connector.erase(TARO, grounds=["withdrawn"]).changed == 2
    assert loyalty_keys(members) == sorted(k for k in before if k not in TARO_KEYS)
    assert connector.erase({"phone": "9012345678"}, grounds=["withdrawn"]).changed == 0


def test_two_parts_cannot_share_a_key_segment(members: S3Harness) -> None:
    with pytest.raises(ConfigError, match="only one placeholder"):
        members.connector(prefixes=["loyalty/{country_code}{phone}/"])
