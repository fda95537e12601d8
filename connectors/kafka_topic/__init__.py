"""The Kafka topic connector: per-customer state in a compacted Kafka topic."""

from connectors.kafka_topic.config import (
    KafkaTopicConfig,
    KeySpec,
    SecuritySpec,
    SuspensionSpec,
)
from connectors.kafka_topic.connector import KafkaTopicConnector

__all__ = [
    "KafkaTopicConfig",
    "KafkaTopicConnector",
    "KeySpec",
    "SecuritySpec",
    "SuspensionSpec",
]
