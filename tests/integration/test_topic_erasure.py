"""An erasure in a compacted Kafka topic, through the pipeline: the subject's key gets a
tombstone, nobody else's record changes, and the principal is told that earlier copies
stay in the topic's log until compaction, not that the data is gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.broker import create_topics
from services.demo.scenario import event
from streams.topics import TopicSpec
from tests.integration.fixtures import DEMO_DATAMAP, answer, joined_stack, notice_text, settings_for

pytestmark = pytest.mark.integration

TOPIC = "customer-profiles"
#: Jiro (the demo's C-1003, found by the CRM from his email), Taro, and a key that
#: starts with Jiro's.
JIRO, TARO, PREFIXED = b"customer:C-1003", b"customer:C-1001", b"customer:C-10030"
PROFILES = f"""
  profiles:
    connector: kafka_topic
    description: Customer profiles, a compacted topic
    label: {{ja: プロフィール, en: Profiles}}
    purposes: [customer_account]
    identifiers: [customer_id]
    config:
      bootstrap_servers: "${{DSR_KAFKA_BOOTSTRAP}}"
      topic: {TOPIC}
      key: {{identifier: customer_id, format: "customer:{{customer_id}}"}}
      value_format: json
      timeout_s: 20
"""


def log(bootstrap: str) -> list[tuple[bytes, bytes | None]]:
    """Every record in the topic, from its beginning: (key, value)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tp = TopicPartition(TOPIC, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        out: list[tuple[bytes, bytes | None]] = []
        while consumer.position(tp) < end:
            for records in consumer.poll(timeout_ms=1000).values():
                out += [(r.key, r.value) for r in records]
        return out
    finally:
        consumer.close()


def test_a_topic_erasure_is_told_with_the_copies_its_log_keeps(tmp_path: Path) -> None:
    datamap = DEMO_DATAMAP.read_text().replace(
        "\n  provision_ledger:", PROFILES + "  provision_ledger:"
    )
    assert "connector: kafka_topic" in datamap
    settings = settings_for(tmp_path, datamap)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        create_topics(stack.bootstrap, [TopicSpec(TOPIC, 1, "a system's state")])
        producer = KafkaProducer(bootstrap_servers=stack.bootstrap)
        for key, name in (
            (JIRO, "佐藤 次郎 (old)"),
            (TARO, "山田 太郎"),
            (PREFIXED, "佐藤 次郎"),
            (JIRO, "佐藤 次郎"),
        ):
            producer.send(TOPIC, key=key, value=json.dumps({"name": name}).encode())
        producer.flush()
        producer.close()
        before = log(stack.bootstrap)

        erase = event("te-1", "erasure", {"email": "jiro@example.jp"}, grounds=["no_longer_needed"])
        response = answer(stack, erase)
        after = log(stack.bootstrap)
        told = notice_text(tmp_path, "te-1")

    # in the system's own data: one tombstone, for Jiro's key only; the older values stay
    assert after[: len(before)] == before
    assert after[len(before) :] == [(JIRO, None)]
    assert sum(1 for key, value in after if key == JIRO and value is not None) == 2

    [profiles] = [s for s in response["systems"] if s["system"] == "profiles"]
    assert (profiles["outcome"], profiles["changed"], profiles["pending_purge"]) == ("done", 1, 1)
    line = next(x for x in told.splitlines() if x.startswith("- プロフィール / Profiles: "))
    assert "1 record(s) deleted from current data (earlier copies stay in the system's log" in line
    assert "1件を現在のデータから削除しました" in line
    assert "record(s) erased" not in line and "件を消去しました" not in line
