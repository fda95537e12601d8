from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.fixtures.moto_server import moto_server, s3_client  # noqa: F401


@pytest.fixture
def s3(moto_server: str) -> Any:  # noqa: F811
    return s3_client(moto_server)


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh, empty bucket on the moto server."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name
