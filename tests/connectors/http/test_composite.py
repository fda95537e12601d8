"""A composite key over HTTP: an API that searches members by phone alone answers
Taro (+81) and Somchai (+66) together; the endpoint's ``key`` keeps only the record
whose every part matches, and the erasure request names both parts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors import ConfigError
from connectors.http import HTTPConnector
from tests.connectors.http.fixtures import MembersAPI

TARO = {"country_code": "81", "phone": "9012345678"}
KEY = [
    {"field": "country_code", "identifier": "country_code"},
    {"field": "phone", "identifier": "phone"},
]


@pytest.fixture
def members() -> Iterator[MembersAPI]:
    api = MembersAPI()
    yield api
    api.close()


def members_config(base: str, **disclose: Any) -> dict[str, Any]:
    return {
        "base_url": base,
        "endpoints": {
            "disclose": {
                "path": "/members",
                "query": {"phone": "{phone}"},
                "records_path": "members",
                "key": KEY,
                "discovers": {"member_id": "id"},
                **disclose,
            },
            "erase": {"method": "DELETE", "path": "/members/{country_code}/{phone}"},
        },
    }


def test_disclosure_keeps_only_the_record_matching_every_part(members: MembersAPI) -> None:
    connector = HTTPConnector("loyalty", members_config(members.url))

    result = connector.disclose(TARO)

    assert [r["name"] for r in result.records] == ["Taro Yamada"]
    assert result.identities == [{"country_code": "81", "phone": "9012345678", "member_id": "1"}]
    assert connector.disclose({"phone": "9012345678"}).records == []  # a part is missing
    connector.close()


def test_erasure_and_its_dry_run_reach_only_the_principal(members: MembersAPI) -> None:
    connector = HTTPConnector("loyalty", members_config(members.url))

    dry = connector.erase(TARO, grounds=["withdrawn"], dry_run=True)
    assert dry.changed == 1
    assert members.names() == ["Taro Yamada", "Somchai Thai", "Hanako Other"]

    assert connector.erase(TARO, grounds=["withdrawn"]).changed == 1
    assert members.names() == ["Somchai Thai", "Hanako Other"]
    assert connector.erase(TARO, grounds=["withdrawn"]).changed == 0
    assert connector.erase({"phone": "9012345678"}, grounds=["withdrawn"]).changed == 0
    assert members.names() == ["Somchai Thai", "Hanako Other"]
    connector.close()


def test_without_the_key_the_look_alike_would_come_back(members: MembersAPI) -> None:
    """The adversarial data is real: the API itself does not tell the two apart."""
    connector = HTTPConnector("loyalty", members_config(members.url, key=[]))
    names = [r["name"] for r in connector.disclose(TARO).records]
    assert names == ["Taro Yamada", "Somchai Thai"]
    connector.close()


def test_a_change_that_does_not_send_every_part_is_refused(members: MembersAPI) -> None:
    cfg = members_config(members.url)
    cfg["endpoints"]["erase"] = {"method": "DELETE", "path": "/members", "query": {"p": "{phone}"}}

    with pytest.raises(ConfigError, match=r"erase does not send \['country_code'\]"):
        HTTPConnector("loyalty", cfg)
