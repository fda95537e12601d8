from tests.fixtures.ledger_rows import ledger  # noqa: F401
from tests.services.crypto.fixtures import keys  # noqa: F401
