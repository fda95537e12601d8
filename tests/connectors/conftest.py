from tests.connectors.fixtures import (  # noqa: F401
    bootstrap,
    db,
    erasure_key,
    outbox,
    producer,
    sqlite_db,
)
