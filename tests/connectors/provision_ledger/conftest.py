from tests.fixtures.databases import database_url  # noqa: F401
