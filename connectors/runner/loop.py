"""The runner's loop: poll the task topics, hand each task to its system's lane, send
one result a task (and a dead letter when it used up its attempts or was not a valid
task), and commit each partition in order as its tasks finish and what they sent is
acknowledged. The whole story is in ``connectors/runner/__init__.py``."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from functools import partial
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError
from kafka.structs import MemberState, TopicPartition
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from connectors.base import ConnectorBase
from connectors.calls import Interrupted
from connectors.runner.crossing import opened, outgoing
from connectors.runner.execution import Executor, _failed, _Stopping
from connectors.runner.membership import REJOIN_STUCK_S, Assignment, RejoinStuck, offset_of
from connectors.runner.sending import ACK_WAIT_S, Sender, Sent, producer_config
from services import deadletters, monitoring
from services.crypto import CryptoError
from services.crypto.sealing import Sealer
from services.delivery.claims import ClaimCheck
from services.delivery.storage import StorageUnavailable
from services.faults import crash_point
from services.heartbeat import Heart
from services.settings import FETCH_MAX_WAIT_MS
from streams import topics
from streams.records import Task, TaskResult, dump, utcnow
from streams.topics import tasks_topic

log = logging.getLogger("dsr.runner")

#: Tasks one poll may return, over all partitions.
MAX_POLL_RECORDS = 100
#: Tasks a partition may have waiting in its lane before polling waits for it.
MAX_QUEUED = 500
#: Pauses while the claim-check store is away (``Runner._result``): the first, then
#: doubling up to the last.
CLAIM_FIRST_PAUSE_S, CLAIM_LAST_PAUSE_S = 0.5, 10.0

#: A task handled: the offset to commit after it, and what it sent (acknowledged before
#: that commit). None: not handled (the runner was stopping), so nothing after it may be
#: committed.
_Handled = tuple[int, list[Sent]] | None


class ConnectorRunner:
    """Consume the task topics of the hosted systems and run their connectors."""

    def __init__(
        self,
        bootstrap: str,
        connectors: Mapping[str, ConnectorBase[Any]],
        *,
        group_id: str | None = None,
        max_attempts: int = 5,
        session_timeout_s: float = 6.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        on_assigned: Callable[[], None] | None = None,
        call_timeouts: Mapping[str, float] | None = None,
        concurrency: Mapping[str, int] | None = None,
        sealer: Sealer | None = None,
        claims: ClaimCheck | None = None,
        heart: Heart | None = None,
        fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS,
    ) -> None:
        if not connectors:
            raise ValueError("a runner needs at least one connector")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.connectors = dict(connectors)
        self.group_id = group_id or topics.CONNECTORS_GROUP
        #: Carries out each task on its connector (``connectors.runner.execution``).
        self.executor = Executor(
            self.connectors,
            max_attempts=max_attempts,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            call_timeouts=call_timeouts,
            heart=heart,
            concurrency=concurrency,
        )
        self._stop = self.executor.stop
        self._closed = False
        self._lane_of = {tasks_topic(s): lane for s, lane in self.executor.lanes.items()}
        #: Opens sealed tasks and seals results (``services.crypto.sealing``); None: all in
        #: the clear.
        self._sealer = sealer
        #: Sends sealed results too large for a message by reference
        #: (``services.delivery.claims``).
        self._claims = claims
        #: Beats on every turn of the poll loop, and lists the tasks in hand
        #: (``services/heartbeat.py``).
        self.heart = heart
        self._in_flight: dict[TopicPartition, deque[Future[_Handled]]] = {}
        #: Since when the group membership has not been stable (``_check_membership``).
        self._unstable_since: float | None = None
        session_ms = int(session_timeout_s * 1000)
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(100, session_ms // 6),
            max_poll_records=MAX_POLL_RECORDS,
            # Apache Kafka answers a waiting fetch when data arrives; the embedded broker
            # looks again only when the wait (or half of it) is over, so a task produced
            # meanwhile waits up to that long (README, "The embedded broker's fetch wait").
            fetch_max_wait_ms=fetch_max_wait_ms,
            metrics_enabled=False,  # kafka-python's own: read by nothing, costly a message
        )
        hosted = sorted(tasks_topic(s) for s in self.connectors)
        # Know the topics' partitions before joining: a first assignment made from empty
        # metadata (topics just created) hands out nothing and needs a second rebalance.
        if missing := set(hosted) - self._consumer.topics():
            log.warning("task topics not found yet", extra={"topics": ",".join(sorted(missing))})
        self._consumer.subscribe(
            hosted, listener=Assignment(self._drain, self._forget, on_assigned)
        )
        try:
            self._producer = KafkaProducer(**producer_config(bootstrap))
            self._sender = Sender(self._producer, self.executor.sleep, self._beat)
        except BaseException:
            self._consumer.close(autocommit=False)
            raise

    def run(self, stop: threading.Event) -> None:
        """Process tasks until ``stop`` is set. Tasks not yet committed run again later."""
        self._stop = self.executor.stop = stop
        log.info("runner started", extra={"systems": ",".join(sorted(self.connectors))})
        try:
            while not stop.is_set():
                self._beat()
                for partition, messages in self._consumer.poll(timeout_ms=200).items():
                    lane = self._lane_of[partition.topic]
                    pending = self._in_flight.setdefault(partition, deque())
                    pending.extend(lane.submit(partial(self._run_one, m)) for m in messages)
                    if len(pending) >= MAX_QUEUED:
                        wait([pending[0]])  # this system is far behind: let it catch up
                self._reap()
                self._check_membership(time.monotonic())
        finally:
            self._drain()
            log.info("runner stopped")

    def _beat(self) -> None:
        """This loop's heartbeat: from each turn, and while a send waits for the broker."""
        if self.heart:
            self.heart.beat()

    def _check_membership(self, now: float) -> None:
        """Raise ``RejoinStuck`` once the group membership has been unstable (joining or
        rebalancing) for ``REJOIN_STUCK_S``; ``main`` then stops for a restart."""
        if self._consumer.group_metadata().state == MemberState.STABLE:
            self._unstable_since = None
        elif self._unstable_since is None:
            self._unstable_since = now
        elif now - self._unstable_since > REJOIN_STUCK_S:
            raise RejoinStuck(f"no stable group membership for {REJOIN_STUCK_S:g} s")

    def _run_one(self, message: Any, interrupted: Interrupted | None) -> _Handled:
        """Handle one task in its system's lane, without waiting for what it sent to be
        acknowledged (``_reap`` waits for that, once for everything it commits).
        ``interrupted``: the task carries on from a call of its that was abandoned."""
        if self._stop.is_set():
            return None
        try:
            return message.offset + 1, self.handle(message, interrupted)
        except _Stopping:
            return None  # stopped while waiting to retry: that task was not committed

    def _reap(self) -> None:
        """Commit each partition up to its last task handled with every task before it
        handled too (a lane of several threads may finish them out of order), once what
        they sent is acknowledged: one flush and one commit for all partitions."""
        offsets: dict[TopicPartition, int] = {}
        sent: list[Sent] = []
        for partition, pending in self._in_flight.items():
            while pending and pending[0].done():
                handled = pending[0].result()  # a Kafka error in a lane stops the runner here
                if handled is None:
                    break
                pending.popleft()
                offsets[partition], more = handled
                sent += more
        if sent:
            self._sender.flush(sent)
        if offsets:
            self._commit(offsets)

    def _forget(self) -> None:
        """Let the tasks in flight finish (their results are sent), commit nothing."""
        tasks = [f for pending in self._in_flight.values() for f in pending]
        self._in_flight.clear()
        self._wait(tasks)
        # a task whose lane failed sent nothing to wait for; it runs again, uncommitted
        done = [f.result() for f in tasks if f.exception() is None]
        self._sender.flush([s for handled in done if handled is not None for s in handled[1]])

    def _drain(self) -> None:
        """Wait for every task in flight and commit it (on stop, and before a rebalance)."""
        self._wait([f for pending in self._in_flight.values() for f in pending])
        try:
            self._reap()
        finally:
            self._in_flight.clear()

    def _wait(self, tasks: list[Future[_Handled]]) -> None:
        """Wait until ``tasks`` are done, beating meanwhile: a slow system's call (cut
        at its time-out by the watchdog) does not make the waiting loop look frozen."""
        while wait(tasks, timeout=ACK_WAIT_S).not_done:
            self._beat()

    def handle(self, message: Any, interrupted: Interrupted | None = None) -> list[Sent]:
        """Process one consumed message; what it sent, not yet acknowledged."""
        try:
            received = Task.model_validate_json(message.value or b"")
            task = opened(received, self._sealer)
        except (ValidationError, CryptoError, ValueError) as exc:
            log.warning(
                "malformed task sent to the dead-letter topic",
                extra={
                    "topic": message.topic,
                    "partition": message.partition,
                    "offset": message.offset,
                },
            )
            error = _summary(exc) if isinstance(exc, ValidationError) else str(exc)[:500]
            body = self._dead_letter(message, error, 0)
            return [self._sender.send(topics.DEAD_LETTER, message.key, body)]
        if task.not_after is not None and utcnow() > task.not_after:
            return self._skip_stale(message, task)
        result = self.executor.execute(task, interrupted)
        crash_point("runner.effect_done")
        sent = []
        if result.error_code == "retries_exhausted":
            body = self._dead_letter(
                message,
                result.error or "",
                result.attempts,
                request_id=task.request_id,
                task_id=task.task_id,
                error_code=result.error_code,
            )
            sent.append(self._sender.send(topics.DEAD_LETTER, task.request_id.encode(), body))
        key = task.request_id.encode()
        try:
            sent.append(self._sender.send(topics.RESULTS, key, self._result(result, received)))
        except MessageSizeTooLargeError:
            error = "the result is larger than the producer's max_request_size"
            sent.append(
                self._sender.send(
                    topics.RESULTS,
                    key,
                    self._result(
                        _failed(
                            task, result.started_at, error, "result_too_large", result.attempts
                        ),
                        received,
                    ),
                )
            )
        except PydanticSerializationError:
            error = "the connector returned values that are not JSON-serialisable"
            sent.append(
                self._sender.send(
                    topics.RESULTS,
                    key,
                    self._result(
                        _failed(task, result.started_at, error, "internal_error", result.attempts),
                        received,
                    ),
                )
            )
        return sent

    def _skip_stale(self, message: Any, task: Task) -> list[Sent]:
        """A task that waited past its request's timeout: the request was answered
        without this system, so running it now would do what the response did not say.
        It is counted and dead-lettered unrun; ``dsr dlq redrive`` runs it."""
        monitoring.record_stale(task.system)
        log.warning(
            "task skipped: its request timed out before the task ran",
            extra={
                "request_id": task.request_id,
                "stage": "connector",
                "system": task.system,
                "kind": str(task.kind),
                "not_after": task.not_after.isoformat() if task.not_after else None,
            },
        )
        body = self._dead_letter(
            message,
            "the request timed out before the task ran; it was not run",
            0,
            request_id=task.request_id,
            task_id=task.task_id,
            error_code="request_timed_out",
        )
        return [self._sender.send(topics.DEAD_LETTER, task.request_id.encode(), body)]

    def _dead_letter(self, message: Any, error: str, attempts: int, **ids: Any) -> bytes:
        """A dead letter of ``message``: its digest, and the task itself only sealed."""
        key = message.key.decode("utf-8", "replace") if message.key else None
        letter = deadletters.letter(
            message.topic,
            error,
            message.value or b"",
            sealer=self._sealer,
            attempts=attempts,
            **{"request_id": key, **ids},
        )
        monitoring.record_sent(letter)
        return dump(letter)

    def _result(self, result: TaskResult, task: Task) -> bytes:
        """``result`` as sent. A result large enough for the claim-check store waits
        for the store while it is away: its effect is done and is not done again (raised,
        it would stop the runner, which would run the task again on its restart)."""
        pause = CLAIM_FIRST_PAUSE_S
        while True:
            try:
                return dump(outgoing(result, task, self._sealer, self._claims))
            except StorageUnavailable as exc:
                log.warning(
                    "result waits: the claim-check store is away",
                    extra={
                        "request_id": task.request_id,
                        "system": task.system,
                        "error_code": type(exc).__name__,
                        "pause_s": pause,
                    },
                )
                self.executor.sleep(pause)  # _Stopping if the runner stops meanwhile
                pause = min(pause * 2, CLAIM_LAST_PAUSE_S)

    def close(self) -> None:
        """Close the consumer, the producer and every connector."""
        if self._closed:
            return
        self._closed = True
        self.executor.close()
        closers = [lambda: self._consumer.close(autocommit=False), self._producer.close]
        closers += [c.close for c in self.connectors.values()]
        for close in closers:
            try:
                close()
            except Exception as exc:
                log.warning("close failed", extra={"error_type": type(exc).__name__})

    def __enter__(self) -> ConnectorRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        try:
            self._consumer.commit({p: offset_of(o) for p, o in offsets.items()})
        except KafkaError as exc:
            # After a rebalance (CommitFailedError), or with the broker gone for a moment
            # (a connection refused while it restarts): never a reason to stop, since a
            # task not committed only runs again.
            log.warning(
                "commit failed; the task may run again",
                extra={
                    "partitions": ",".join(f"{p.topic}[{p.partition}]" for p in offsets),
                    "error_type": type(exc).__name__,
                },
            )


def _summary(exc: ValidationError) -> str:
    """A validation error without the input values, which may be personal data."""
    errors = exc.errors(include_input=False, include_url=False)
    return "invalid task: " + "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in errors[:10]
    )
