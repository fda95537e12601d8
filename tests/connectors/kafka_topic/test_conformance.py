from connectors.testing import conformance_tests
from tests.connectors.kafka_topic.fixtures import KafkaTopicHarness

TestKafkaTopicConformance = conformance_tests(KafkaTopicHarness)
