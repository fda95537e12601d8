from tests.connectors.fixtures import bootstrap, db, outbox, producer, sqlite_db  # noqa: F401
