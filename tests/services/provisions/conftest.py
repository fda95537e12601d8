from tests.fixtures.databases import database_url  # noqa: F401
from tests.services.provisions.fixtures import ledger, store  # noqa: F401
