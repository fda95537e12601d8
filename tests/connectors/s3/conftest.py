from __future__ import annotations

from pathlib import Path

import pytest

from tests.connectors.s3.fixtures import S3Harness
from tests.fixtures.moto_server import moto_server  # noqa: F401


@pytest.fixture
def env(request: pytest.FixtureRequest, tmp_path: Path) -> S3Harness:
    """A fresh bucket holding Alice's and Bob's objects."""
    harness = S3Harness(request, tmp_path)
    harness.seed_objects()
    return harness
