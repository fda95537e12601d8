from tests.connectors.sql.fixtures import loyalty  # noqa: F401
from tests.fixtures.mariadb import mariadb_url  # noqa: F401
