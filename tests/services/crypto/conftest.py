from tests.services.crypto.fixtures import keys, ledger  # noqa: F401
