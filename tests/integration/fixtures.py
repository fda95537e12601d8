"""A whole pipeline on the embedded broker, in a temporary home, for integration tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from services.demo.seed import seed
from services.settings import Settings
from services.stack import Stack

DEMO_DATAMAP = Path(__file__).parents[2] / "services" / "demo" / "datamap.yaml"


def settings_for(
    home: Path, datamap_text: str | None = None, database_url: str | None = None
) -> Settings:
    seed(home)
    datamap = home / "datamap.yaml"
    if datamap_text is None:
        shutil.copyfile(DEMO_DATAMAP, datamap)
    else:
        datamap.write_text(datamap_text)
    return replace(
        Settings(),
        home=home,
        kafka_bootstrap=None,
        datamap_override=str(datamap),
        database_url_override=database_url,
        storage_url_override=None,
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(settings_for(tmp_path), log_dir=tmp_path / "logs") as s:
        s.wait_joined()
        yield s
