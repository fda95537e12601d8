"""The SQL connector passes the conformance kit, on SQLite and on PostgreSQL (when reachable).

Behaviour particular to SQL (erasure strategies, suppression tables, joins
through identifiers, schema checks) is tested in ``tests/connectors/sql/``.
"""

import pytest

from connectors.testing import conformance_tests
from tests.connectors.sql.fixtures import PostgreSQLHarness, SQLiteHarness

TestSQLiteConformance = conformance_tests(SQLiteHarness)
TestPostgreSQLConformance = pytest.mark.postgres(conformance_tests(PostgreSQLHarness))
