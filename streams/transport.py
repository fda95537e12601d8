"""Faust's aiokafka transport with a short fetch wait.

Faust hard-codes ``fetch_max_wait_ms=1500`` for its consumer. A fetch that was
sent before data arrived can then hold a fresh message for up to 1.5 s per hop,
and a request crosses three hops inside the worker. The broker answers a fetch
as soon as data arrives once it is polling, so a short wait costs only a few
idle fetches a second. Registered as the ``dsrkafka://`` broker scheme.
"""

from __future__ import annotations

import os
from typing import Any

from faust.transport.drivers import aiokafka as driver

FETCH_MAX_WAIT_MS = int(os.environ.get("DSR_FETCH_MAX_WAIT_MS", "50"))


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka keeps the setting here until start() hands it to its fetcher.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer = Consumer
