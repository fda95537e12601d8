from tests.services.notify.fixtures import smtp_server  # noqa: F401
from tests.streams.agents.fixtures import pipeline  # noqa: F401
