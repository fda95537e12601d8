"""The Faust application: the agents (intake, decisions, fan-out, aggregation, provision
records, notices), a sweeper, the provision-record purge and the shredding of expired
package keys, wired to the handlers.

Run a worker with ``python -m streams.app worker`` (``dsr up`` does it for you).
Handlers do the work; this module only moves bytes between topics and them.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import inspect
import logging
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import faust
import mode.loop

from services import deadletters, files, monitoring, notify
from services.crypto.local import LocalKeyProvider
from services.crypto.shred import shred
from services.faults import crash_point
from services.heartbeat import Heart
from services.logs import configure_logging, library_config
from services.processes import exit_after, settle_heap
from services.settings import Settings, mark_ready
from services.settings import load as load_settings
from services.signing import Keyring, KeyringError
from streams import batching, failures, outbox, parking, timeouts, topics, transient, transport
from streams.agents import (
    aggregate,
    decisions,
    decode,
    fanout,
    intake,
    notices,
    provisions,
    respond,
)
from streams.agents.decode import accepted
from streams.context import Outgoing, Pipeline
from streams.records import Accepted, AcceptedVia, dump

log = logging.getLogger("dsr.worker")

SWEEP_INTERVAL_S = 1.0
#: How often a worker renews the leases of the responses it is sending
#: (``services.ledger.base.SEND_LEASE`` is 30 s).
LEASE_RENEWAL_S = 5.0
#: An accepted request not fanned out within this time is re-sent to fan-out (outbox).
REFANOUT_AFTER = timedelta(seconds=30)

#: Events an agent takes in one batch, at most: each handled in turn, then all that they
#: give sent at once (``streams.batching``).
EVENT_BATCH = 64
#: Results recorded in one ledger transaction, at most.
RESULT_BATCH = 64
#: Notices taken in one batch, at most (sent side by side, on the default executor's
#: threads).
NOTICE_BATCH = 32


class QuietWorker(faust.Worker):
    """Faust's worker without its terminal spinner, whose cursor codes would land in
    the JSON log."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None

    def _schedule_shutdown(self, signal: Any) -> None:
        """On SIGTERM or SIGINT stop gracefully, but within ``STOP_DEADLINE_S``."""
        if not self._signal_stop_time:
            exit_after()
        super()._schedule_shutdown(signal)


def create_app(settings: Settings, pipeline: Pipeline | None = None) -> faust.App:
    if not settings.kafka_bootstrap:
        raise SystemExit("DSR_KAFKA_BOOTSTRAP is not set: start workers with `dsr up`.")
    session = settings.session_timeout_s
    # Faust makes only the last level of its datadir, when the worker starts: a home with
    # no run/ yet (nothing else has written there) would stop the worker at start-up.
    datadir = settings.home / "run" / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = transport.App(
        # The topic prefix names a deployment: two on one cluster keep apart.
        topics.PIPELINE_GROUP,
        broker=f"dsrkafka://{settings.kafka_bootstrap}",
        store="memory://",
        # Faust's own files (its table state) under DSR_HOME, never the working directory.
        datadir=str(datadir),
        web_enabled=False,
        topic_partitions=topics.PARTITIONS,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=session,
        broker_heartbeat_interval=settings.broker_heartbeat_s,
        broker_rebalance_timeout=session * 2,
        broker_commit_interval=0.5,
        producer_linger=0.0,
        # every line JSON: Faust's, mode's and aiokafka's records too, and no spinner
        logging_config=library_config(),
        Worker=QuietWorker,
        Stream=batching.Stream,  # with ``take_ready``
    )
    app.client_options = transport.Options(settings.fetch_max_wait_ms, settings.idempotent_producer)
    state: dict[str, Pipeline] = {}
    notifier = notify.from_settings(settings)

    def ctx() -> Pipeline:
        if "p" not in state:
            state["p"] = pipeline or Pipeline.from_settings(settings)
        return state["p"]

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    sending = outbox.ResponseSends(str(settings.kafka_bootstrap))

    async def send(outgoing: list[Outgoing]) -> None:
        """Send ``outgoing`` in order; then wait, all at once, until the broker has
        acknowledged the responses and notices among them, and mark those responses
        published (a response is never marked published before it, and its notice, are
        acknowledged)."""
        outgoing = await sending.admit(ctx().ledger, outgoing)
        acknowledged: list[Awaitable[Any]] = []
        published = []
        with sending.holding(outgoing):
            for o in outgoing:
                delivery = await app.producer.send(
                    o.topic, o.key, o.value, partition=None, timestamp=None, headers=None
                )
                if o.topic in (topics.RESPONSES, topics.NOTICES):
                    acknowledged.append(delivery)
                    if o.topic == topics.RESPONSES:
                        published.append(o.key.decode() if o.key else "")
                if o.record is not None and not o.resend:
                    monitoring.record_sent(o.record)
            for outcome in await asyncio.gather(*acknowledged, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    raise outcome
            if published:
                crash_point("responses.published")
                ctx().ledger.mark_published(published)

    @app.timer(LEASE_RENEWAL_S)
    async def renew_leases() -> None:
        """Keep the leases of the responses this worker is still sending (a broker may
        hold a send for seconds while its partitions move)."""
        with transient.skipped("lease renewal", "outbox"):
            sending.renew(ctx().ledger)

    async def handled(
        stage: str,
        handler: Callable[[Pipeline, Any], list[Outgoing] | Awaitable[list[Outgoing]]],
        event: Any,
    ) -> list[Outgoing]:
        """What ``handler`` sends for ``event``; if it cannot be handled, its dead letter
        (and its request is parked when the fault is neither the infrastructure's nor
        the event's own)."""
        with monitoring.observe_stage(stage):
            try:
                result = transient.again(handler)(ctx(), event)
                return await result if inspect.isawaitable(result) else result
            except Exception as exc:  # noqa: BLE001 - the worker must keep running
                return failed(stage)([event], exc)

    async def batches(
        stage: str,
        stream: faust.StreamT[bytes],
        size: int,
        handle: Callable[[list[Any]], list[Outgoing] | Awaitable[list[Outgoing]]],
    ) -> None:
        """Hand each batch of at most ``size`` events of ``stream`` to ``handle`` and send
        what it gives. While the ledger or the broker is away, the batch waits and is
        handled again (``transient.patiently``): an outage dead-letters nothing."""

        async def attempt(events: list[Any]) -> None:
            result = handle(events)
            outgoing = await result if inspect.isawaitable(result) else result
            await send(outgoing)  # the batch's offsets are acknowledged after this

        async for events in batching.ready(stream, size):
            await transient.patiently(
                stage, functools.partial(attempt, events), monitoring.record_wait
            )

    async def run(
        stage: str,
        handler: Callable[[Pipeline, Any], list[Outgoing] | Awaitable[list[Outgoing]]],
        stream: faust.StreamT[bytes],
    ) -> None:
        """Hand each event of ``stream`` to ``handler``, one at a time, and send what a
        batch of them gives at once; what cannot be handled goes to the dead-letter topic
        and the worker carries on."""

        async def each(events: list[Any]) -> list[Outgoing]:
            return [o for event in events for o in await handled(stage, handler, event)]

        await batches(stage, stream, EVENT_BATCH, each)

    def park(stage: str, request_id: str | None, exc: Exception) -> None:
        """Set aside the request whose handling raised ``exc``; the agents first ask
        ``parking.parks`` (not the infrastructure's fault, nor the event's own)."""
        if request_id is None:
            return
        try:
            if parking.park(ctx(), stage, request_id, exc):
                monitoring.record_parked(stage, type(exc).__name__)
            else:  # answered already, or not in the ledger: nothing to set aside
                log.error(
                    "handling failed",
                    extra={"stage": stage, "request_id": request_id, **parking.reason(exc)},
                )
        except Exception:  # noqa: BLE001 - the ledger is failing too: the dead letter stays
            log.exception("request not parked", extra={"stage": stage, "request_id": request_id})

    def guarded(
        stage: str, request_id: str, step: Callable[[Pipeline, str], list[Outgoing]]
    ) -> list[Outgoing]:
        """``step`` for one request of a sweep: if it raises (not transiently), the
        request is parked, whatever the error (there is no event to dead-letter and the
        next sweep would only raise again), and the sweep goes on with the others."""
        try:
            return step(ctx(), request_id)
        except Exception as exc:
            if parking.is_transient(exc):
                raise
            park(stage, request_id, exc)
            return []

    def failed(stage: str) -> Callable[[Sequence[Any], Exception], list[Outgoing]]:
        """What ``stage`` sends for events that could not be handled (``each_alone``):
        their dead letters, and their requests parked when the fault is theirs."""

        def fail(batch: Sequence[Any], exc: Exception) -> list[Outgoing]:
            if parking.is_transient(exc):
                raise exc  # the infrastructure's: the batch waits (``batches``)
            requests = dict.fromkeys(failures.request_id_of(e) for e in batch)
            for request_id in requests if parking.parks(exc) else []:
                park(stage, request_id, exc)  # once a request, whatever its events
            return failures.dead_letters(stage, batch, exc, ctx().sealer)

        return fail

    def aggregate_batch(events: Sequence[Any]) -> list[Outgoing]:
        """A batch of results: each checked, all recorded in one ledger transaction, each
        request advanced once. A failure dead-letters only the events it concerns."""

        def handle(batch: Sequence[Any]) -> list[Outgoing]:
            parsed = [decode.parse_result(ctx(), e.value) for e in batch]
            outgoing: list[Outgoing] = []
            built: list[respond.Built] = []
            with files.synced_together():  # the packages are on disk before they count
                for step in transient.again(aggregate.record)(ctx(), parsed):
                    try:
                        done = transient.again(step.advance)(ctx())
                    except Exception as exc:  # noqa: BLE001 - only this request's events fail
                        outgoing += failed("aggregate")([batch[i] for i in step.sources], exc)
                        continue
                    if isinstance(done, respond.Built):
                        built.append(done)
                    else:
                        outgoing += done
            # the batch's responses are completed in one ledger transaction
            return outgoing + (transient.again(respond.conclude)(ctx(), built) if built else [])

        with monitoring.observe_stage("aggregate"):
            return failures.each_alone(events, handle, failed("aggregate"))

    def fanout_batch(events: Sequence[Any]) -> list[Outgoing]:
        """A batch of accepted requests, fanned out together; if that fails, each on its
        own, so that a failure dead-letters (or parks) only the request it concerns."""

        def handle(batch: Sequence[Any]) -> list[Outgoing]:
            ids = [accepted(e.value) for e in batch]
            return transient.again(fanout.handle_batch)(ctx(), ids)

        with monitoring.observe_stage("fanout"):
            return failures.each_alone(events, handle, failed("fanout"))

    # Signed events (requests, decisions) are checked with their headers. Requests are
    # admitted a batch at a time, in one ledger transaction, and those accepted are
    # fanned out in the same batch, in another (``fanout.in_place``).
    @app.agent(raw_topic(topics.REQUESTS), name="intake")
    async def intake_agent(stream: faust.StreamT[bytes]) -> None:
        def handle(events: list[Any]) -> list[Outgoing]:
            with monitoring.observe_stage("intake"):
                outgoing = intake.handle_batch(
                    ctx(),
                    [(e.value, e.headers, _place(e)) for e in events],
                    lambda i, exc: failed("intake")([events[i]], exc),
                )
            if not any(o.topic == topics.ACCEPTED for o in outgoing):
                return outgoing
            with monitoring.observe_stage("fanout"):
                return fanout.in_place(ctx(), outgoing)

        await batches("intake", stream, EVENT_BATCH, handle)

    @app.agent(raw_topic(topics.DECISIONS), name="decisions")
    async def decisions_agent(stream: faust.StreamT[bytes]) -> None:
        await run(
            "decisions",
            lambda c, e: decisions.handle_decision(c, e.value, e.headers, _place(e)),
            stream,
        )

    # Requests released, swept or redriven, and those intake could not fan out in place,
    # are fanned out a batch at a time, in one ledger transaction.
    @app.agent(raw_topic(topics.ACCEPTED), name="fanout")
    async def fanout_agent(stream: faust.StreamT[bytes]) -> None:
        await batches("fanout", stream, EVENT_BATCH, fanout_batch)

    # Results come five or twenty to a request: recorded a batch at a time. How far each
    # partition is recorded tells when its requests may be timed out (``time_out``).
    reads = timeouts.Reads()

    @app.agent(raw_topic(topics.RESULTS), name="aggregate")
    async def aggregate_agent(stream: faust.StreamT[bytes]) -> None:
        def handle(events: list[Any]) -> list[Outgoing]:
            outgoing = aggregate_batch(events)
            reads.recorded(events)
            return outgoing

        await batches("aggregate", stream, RESULT_BATCH, handle)

    @app.agent(raw_topic(topics.PROVISIONS), name="provisions")
    async def provisions_agent(stream: faust.StreamT[bytes]) -> None:
        await run(
            "provisions",
            lambda c, e: provisions.handle_provision(c, e.value, e.headers, _place(e)),
            stream,
        )

    # A notice can take an SMTP server's round trips (connect, TLS, login, send): a batch's
    # notices are sent side by side, each request's in order (they share its key), and
    # audited together. If the batch fails, each notice is handled again alone, so that
    # only one that cannot be sent is dead-lettered.
    @app.agent(raw_topic(topics.NOTICES), name="notices")
    async def notices_agent(stream: faust.StreamT[bytes]) -> None:
        contact = str(ctx().letterhead.complaints)

        def handler(c: Pipeline, e: Any) -> Awaitable[list[Outgoing]]:
            return notices.handle_notice(c, notifier, e.value, contact)

        async def in_order(events: list[Any]) -> list[Outgoing]:
            return [o for e in events for o in await handled("notices", handler, e)]

        async def each_alone(events: list[Any]) -> list[Outgoing]:
            by_request: dict[bytes | None, list[Any]] = defaultdict(list)
            for event in events:
                by_request[event.key].append(event)
            sent = await asyncio.gather(*(in_order(group) for group in by_request.values()))
            return [o for out in sent for o in out]

        async def handle(events: list[Any]) -> list[Outgoing]:
            try:
                with monitoring.observe_stage("notices"):
                    raws = [e.value for e in events]
                    return await notices.handle_notices(ctx(), notifier, raws, contact)
            except Exception as exc:  # noqa: BLE001 - the worker must keep running
                if parking.is_transient(exc):
                    raise  # the infrastructure's: the batch waits (``batches``)
                log.warning("notice batch failed: each alone", extra={"stage": "notices"})
                return await each_alone(events)

        await batches("notices", stream, NOTICE_BATCH, handle)

    # Kept in the ledger as they arrive, so that a broker restart loses none.
    @app.agent(raw_topic(topics.DEAD_LETTER), name="deadletters")
    async def deadletters_agent(stream: faust.StreamT[bytes]) -> None:
        async def record(event: Any) -> None:
            ms = _sent_ms(event) or 0
            transient.again(deadletters.record)(ctx().ledger, event.value, ms, event.key)

        async for event in stream.events():
            try:  # kept once the ledger is back, if it is away
                await transient.patiently(
                    "deadletters", functools.partial(record, event), monitoring.record_wait
                )
            except Exception:  # noqa: BLE001 - a dead letter is never dead-lettered (a loop)
                log.exception("dead letter not recorded", extra={"stage": "deadletters"})

    @app.on_rebalance_complete.connect
    def _ready(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        settle_heap()
        mark_ready(settings)

    heart = Heart.for_process(settings, "worker", monitoring.record_beat)

    @app.timer(heart.interval)
    async def beat() -> None:
        """On the event loop itself: a loop that is stuck stops beating (``dsr health``)."""
        heart.beat()

    @app.timer(settings.provision_purge_interval_s, on_leader=True)
    async def purge_provisions() -> None:
        """Remove provision records past retention, keeping those of principals with a
        pending request about them (the store audits what it removed)."""
        with transient.skipped("provision purge", "purge"):
            done = ctx().ledger.provisions.purge()
            if done.purged:
                log.info(
                    "provision records purged",
                    extra={"stage": "purge", "count": done.purged, "held": done.held},
                )

    @app.timer(settings.key_shred_interval_s, on_leader=True)
    async def shred_keys() -> None:
        """Destroy the data keys (of sealed packages and sealed events) of requests past
        retention (crypto-shredding), as ``dsr keys shred`` does; the ledger gets one
        audit row with the count."""
        if not (settings.encrypt_packages or settings.seal_events):
            return  # nothing was sealed here: no data keys to destroy
        retention = timedelta(days=settings.package_retention_days)
        keys = LocalKeyProvider.from_settings(settings)
        with transient.skipped("key shredding", "shred"):
            done = shred(ctx().ledger, keys, retention)
            if done.destroyed:
                log.info("data keys destroyed", extra={"stage": "shred", "count": done.destroyed})

    @app.timer(SWEEP_INTERVAL_S)
    async def time_out() -> None:
        """Time out the overdue requests whose results come to this worker, once it has
        read their results up to their deadline (``streams.timeouts``); a request that
        raises is parked, and the others are timed out."""
        positions = _positions(app) or {}
        results = {tp.partition: at for tp, at in positions.items() if tp.topic == topics.RESULTS}
        read = reads.until(results)
        if not read:
            return
        partitions = app.consumer.topic_partitions(topics.RESULTS) or topics.PARTITIONS
        with transient.skipped("time-outs", "sweep"):
            overdue = ctx().ledger.overdue_fan_outs(max(read.values()))
            outgoing = [
                o
                for rid in timeouts.due(overdue, read, partitions)
                for o in guarded("sweeper", rid, aggregate.time_out)
            ]
            await send(outgoing)

    @app.timer(SWEEP_INTERVAL_S, on_leader=True)
    async def sweep() -> None:
        """Re-send what a crash left unsent; a request that raises is parked, and the
        sweep goes on."""
        p = ctx()
        with transient.skipped("sweep", "sweep"):
            outgoing: list[Outgoing] = []
            for rid in p.ledger.stalled_refusals():
                outgoing += guarded("sweeper", rid, respond.finish)
            # A request accepted long ago but never fanned out lost its message in a crash,
            # unless it is still queued: never re-send while fan-out has a backlog.
            backlog = _backlog(app)
            if backlog is not None and not backlog.get(topics.ACCEPTED):
                for rid in p.ledger.claim_stalled_accepted(REFANOUT_AFTER):
                    again = Accepted(request_id=rid, via=AcceptedVia.SWEEPER)
                    outgoing.append(Outgoing(topics.ACCEPTED, rid.encode(), dump(again)))
            for resp in p.ledger.unpublished_responses(unleased=True):
                outgoing += guarded("outbox", resp.request_id, respond.finish)
            await send(outgoing)

    return app


def _place(event: Any) -> str:
    """Where ``event``'s message was read (``topic/partition/offset``): what tells the
    message read again (after a crash, or an outage) from the same event sent again."""
    message = event.message
    return f"{message.topic}/{message.partition}/{message.offset}"


def _sent_ms(event: Any) -> int | None:
    """When ``event``'s message was sent (its timestamp), in milliseconds."""
    sent = event.message.timestamp
    return round(sent * 1000) if sent else None


def _positions(app: faust.App) -> dict[Any, timeouts.Position] | None:
    """Each partition this worker reads, with what its consumer already knows of it (no
    broker round trip: ``timeouts.Position``); None while it does not know them
    (starting, rebalancing)."""
    consumer = app.consumer
    committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    try:
        kafka = consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
        return {
            tp: timeouts.Position(
                consumer.highwater(tp), committed.get(tp), _seconds(kafka.last_poll_timestamp(tp))
            )
            for tp in consumer.assignment()
        }
    except Exception:  # noqa: BLE001 - not started yet, or mid-rebalance
        return None


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _backlog(app: faust.App) -> dict[str, int] | None:
    """This worker's messages not yet committed, per topic; None when it does not know
    yet (``_positions``)."""
    positions = _positions(app)
    if positions is None:
        return None
    backlog: dict[str, int] = defaultdict(int)
    for tp, (highwater, done, _) in positions.items():
        if highwater is not None and done is not None:
            backlog[tp.topic] += max(0, highwater - done)
    return dict(backlog)


def main() -> None:
    if importlib.util.find_spec("uvloop"):  # a dependency, except on Windows
        mode.loop.use("uvloop")  # before anything makes the event loop
    settings = load_settings()
    configure_logging(settings.log_level)
    if settings.require_signatures:
        try:
            Keyring.load(settings.signing_keys_path)
        except KeyringError as exc:
            sys.exit(f"dsr worker: {exc}")
    app = create_app(settings)
    argv = sys.argv[1:] or ["worker"]
    if argv[0] == "worker":
        crash_point("worker.starting")
        monitoring.serve_process(settings, "worker")
        if not any(a.startswith(("-l", "--loglevel")) for a in argv):
            argv += ["--loglevel", "warn"]
        if not any(a.startswith(("--with-web", "--without-web", "-p", "--web-port")) for a in argv):
            argv.append("--without-web")
        argv.insert(0, "--quiet")  # no banner: the worker's own lines are JSON logs
    sys.argv = [sys.argv[0], *argv]
    app.main()


if __name__ == "__main__":
    main()
