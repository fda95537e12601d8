from tests.streams.agents.fixtures import erasure_key, pipeline  # noqa: F401
