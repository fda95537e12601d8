from collections.abc import Iterator

import pytest

from services.ledger import Ledger
from tests.fixtures.databases import database_url  # noqa: F401


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:  # noqa: F811 - the imported fixture
    """A migrated ledger on each database (SQLite, and PostgreSQL when it runs)."""
    led = Ledger(database_url)
    led.migrate()
    yield led
    led.close()
