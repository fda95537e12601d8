from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.connectors.http.fixtures import FakeSaaS


@pytest.fixture
def saas() -> Iterator[FakeSaaS]:
    """The fake SaaS, freshly seeded, on a loopback port."""
    server = FakeSaaS()
    server.start()
    yield server
    server.stop()
