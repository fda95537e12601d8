from tests.streams.agents.fixtures import pipeline  # noqa: F401
