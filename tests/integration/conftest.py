from tests.fixtures.postgres_server import postgres_server  # noqa: F401
