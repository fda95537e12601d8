from tests.fixtures.ledger_rows import ledger  # noqa: F401
from tests.streams.agents.fixtures import pipeline  # noqa: F401
