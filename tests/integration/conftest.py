from tests.fixtures.postgres_server import postgres_host, postgres_server  # noqa: F401
