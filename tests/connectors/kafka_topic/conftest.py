from tests.connectors.kafka_topic.fixtures import profiles, topic_broker, topic_producer  # noqa: F401
