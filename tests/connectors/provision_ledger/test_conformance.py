"""The provision-ledger connector passes the conformance kit, on SQLite and on PostgreSQL
(when reachable)."""

import pytest

from connectors.testing import conformance_tests
from tests.connectors.provision_ledger.fixtures import (
    PostgreSQLLedgerHarness,
    SQLiteLedgerHarness,
)

TestSQLiteLedgerConformance = conformance_tests(SQLiteLedgerHarness)
TestPostgreSQLLedgerConformance = pytest.mark.postgres(conformance_tests(PostgreSQLLedgerHarness))
