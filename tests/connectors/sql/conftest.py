from tests.connectors.sql.fixtures import loyalty  # noqa: F401
from tests.fixtures.mariadb import mariadb_host, mariadb_url  # noqa: F401
from tests.fixtures.postgres_server import postgres_host  # noqa: F401
