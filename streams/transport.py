"""Faust's aiokafka transport with the fetch wait of the worker's settings.

Faust hard-codes ``fetch_max_wait_ms=1500`` for its consumer, and a request crosses
three hops inside the worker. Apache Kafka answers a waiting fetch as soon as data
arrives, so there a long wait (``DSR_FETCH_MAX_WAIT_MS``, 500 ms) costs nothing but
spares the idle fetches. The embedded broker looks again only when the wait (or half
of it) is over: a message produced meanwhile is seen up to that late, at every hop, so
``dsr up`` waits 50 ms there, at the cost of a few idle fetches a second. Registered as
the ``dsrkafka://`` broker scheme.

Its producer is idempotent (``DSR_IDEMPOTENT_PRODUCER``): when a broker dies after
writing a batch but before acknowledging it, the producer's retry to the partition's
next leader is recognised by its sequence number and not appended twice.

It also sends again what a broker refused with ``UnknownError``: an
in-memory broker that has just restarted answers that for a few seconds, and aiokafka
does not retry it (it is not a retriable error), so the worker crashed. The pipeline's
stages are idempotent, so a message sent twice changes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka.errors import UnknownError
from faust.transport.drivers import aiokafka as driver

from services.settings import FETCH_MAX_WAIT_MS

log = logging.getLogger("dsr.transport")

#: Times a message the broker refused is sent, in all.
SEND_ATTEMPTS = 6


@dataclass(frozen=True)
class Options:
    """What the worker's settings ask of its Kafka clients beyond Faust's own."""

    fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS
    idempotent_producer: bool = True  # DSR_IDEMPOTENT_PRODUCER


class App(faust.App):
    """A Faust app whose ``dsrkafka://`` clients follow ``options``."""

    client_options: Options = Options()


def _options(app: Any) -> Options:
    return app.client_options if isinstance(app, App) else Options()


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka keeps the setting here until start() hands it to its fetcher.
        consumer._fetch_max_wait_ms = _options(transport.app).fetch_max_wait_ms
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Producer(driver.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        extra = dict(super()._settings_extra())
        if _options(self.app).idempotent_producer:
            extra.update(acks="all", enable_idempotence=True)
        return extra

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[Any]:
        args = (topic, key, value, partition, timestamp, headers)
        sent = await super().send(*args, transactional_id=transactional_id)
        if transactional_id:  # a transaction is retried as a whole, not a message
            return sent
        return asyncio.ensure_future(self._delivered(sent, args))

    async def _delivered(self, sent: Awaitable[Any], args: tuple[Any, ...]) -> Any:
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                return await sent
            except UnknownError:
                if attempt == SEND_ATTEMPTS:
                    raise
                log.warning(
                    "sending again after a broker error",
                    extra={"topic": args[0], "attempts": attempt, "error_type": "UnknownError"},
                )
                await asyncio.sleep(0.5 * 2 ** (attempt - 1))
                sent = await super().send(*args)
        raise AssertionError("unreachable")


class Transport(driver.Transport):
    Consumer = Consumer
    Producer = Producer
