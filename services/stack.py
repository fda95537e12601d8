"""Run the whole pipeline on one machine: broker, Faust workers and connector runners.

``dsr up`` and ``dsr demo`` use this; so do the integration tests, which also
kill and restart single processes through it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from connectors.registry import build
from services.broker import EmbeddedBroker, create_topics, free_port
from services.client import Submitter
from services.crypto.public import export_for_producers
from services.datamap import DataMap
from services.datamap import load as load_datamap
from services.datamap import parse as parse_datamap
from services.datamap import read as read_datamap
from services.files import stamp, write_atomic, write_status
from services.ledger import Ledger
from services.processes import die_with_parent, hold_home
from services.reconcile import Reconciled, reconcile
from services.settings import EMBEDDED_FETCH_MAX_WAIT_MS, Settings
from services.signing import Keyring
from streams.topics import all_topics

log = logging.getLogger(__name__)


@dataclass
class Component:
    name: str
    argv: list[str]
    metrics_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None


@dataclass
class Stack:
    settings: Settings
    workers: int = 1
    runners: int = 1
    log_dir: Path | None = None
    broker: EmbeddedBroker | None = None
    components: dict[str, Component] = field(default_factory=dict)
    #: How existing topics differ from the expected settings, found at start.
    topic_drift: list[str] = field(default_factory=list)
    #: Give each process a loopback ``/metrics`` port (see ``metrics_urls``).
    metrics: bool = True
    #: This stack's hold on its home (``processes.hold_home``), from ``start`` to ``stop``.
    _home: IO[bytes] | None = field(default=None, repr=False)
    #: The data map the stack runs on, from ``start`` (``_take_datamap``).
    datamap: DataMap = field(init=False, repr=False)
    #: The data map file as last seen (``check_datamap``).
    _datamap_seen: tuple[int, int, int] | None = field(default=None, repr=False)

    @property
    def datamap_file(self) -> Path:
        """The data map every process of the stack reads (``_take_datamap``)."""
        return self.settings.home / "run" / "datamap.yaml"

    @property
    def bootstrap(self) -> str:
        if self.settings.kafka_bootstrap:
            return self.settings.kafka_bootstrap
        if self.broker is None:
            raise RuntimeError("the stack is not started")
        return self.broker.bootstrap

    def start(self) -> None:
        """Start the broker (the embedded one unless ``DSR_KAFKA_BOOTSTRAP`` names one),
        create the topics, then the processes. An embedded broker starts empty: what
        the one before it held (a previous ``dsr up``'s, stopped or killed) is lost, so
        every open request is re-driven from the ledger and the responses and notices
        that broker held are sent again, as when it restarts under ``dsr up``."""
        home = self.settings.home
        home.mkdir(parents=True, exist_ok=True)
        self._home = hold_home(home)  # HomeInUse: another stack's, left untouched
        self.datamap = self._take_datamap()
        with Ledger(self.settings.database_url) as ledger:
            ledger.migrate()
        if self.settings.kafka_bootstrap:
            self.topic_drift = create_topics(
                self.bootstrap,
                all_topics(sorted(self.datamap.systems)),
                replication=self.settings.topic_replication,
                min_isr=self.settings.topic_min_isr,
            )
        else:
            done = self._start_embedded_broker()
            self.topic_drift = done.drift
            if done.redriven:
                log.warning("%d open request(s) re-driven from the ledger", done.redriven)
        (home / "broker.addr").write_text(self.bootstrap)
        for line in self.topic_drift:
            log.warning("topic differs from the expected settings: %s", line)
        if self.settings.require_signatures:
            Keyring.ensure(self.settings.signing_keys_path)
        if self.settings.seal_events:
            export_for_producers(self.settings)
        for i in range(self.workers):
            self.add(f"worker-{i}", [sys.executable, "-m", "streams.app", "worker"])
        for i in range(self.runners):
            self.add(f"runner-{i}", [sys.executable, "-m", "connectors.runner"])
        if self.metrics:  # the ledger's gauges and the groups' lag, whatever the workers do
            self.add("exporter", [sys.executable, "-m", "services.monitoring.exporter"])
        for name in self.components:
            self.spawn(name)

    def _take_datamap(self) -> DataMap:
        """Copy the data map at ``DSR_DATAMAP``, once it loads, to ``datamap_file``: every
        process the stack starts, at once or later (a restart after a crash), reads that
        copy. An edit of the file while the stack runs, even one that does not load,
        so reaches none of them piecemeal, a runner on one map and a worker on another:
        the stack takes it when it starts again (``check_datamap`` says so)."""
        source = self.settings.datamap_path
        self._datamap_seen = stamp(source)
        text = read_datamap(source)
        datamap = parse_datamap(text, str(source))  # DataMapError: nothing is started
        write_atomic(self.datamap_file, text.encode())
        return datamap

    def check_datamap(self) -> None:
        """Log, once for each edit of the data map file, that the stack runs on the data
        map it started with, and whether the edited one loads."""
        source = self.settings.datamap_path
        if (seen := stamp(source)) == self._datamap_seen:
            return
        self._datamap_seen = seen
        try:
            for name, spec in load_datamap(source).systems.items():
                if spec.excluded is None:  # its connector and config as a runner builds them
                    build(name, spec).close()
        except Exception as exc:  # noqa: BLE001 - reported, whatever the connector raised
            log.error(
                "the data map at %s was changed and does not load; the stack keeps the one "
                "it started with: %s",
                source,
                exc,
            )
            return
        log.warning(
            "the data map at %s was changed; the stack keeps the one it started with, and "
            "takes this one when `dsr up` starts again",
            source,
        )

    def broker_alive(self) -> bool:
        return self.broker is None or self.broker.process.poll() is None

    def restart_broker(self) -> int:
        """Start the embedded broker again, empty, on the same port, re-drive every open
        request from the ledger and return how many, and send again the responses and
        notices its log held (``services/reconcile.py``); the workers and runners that
        were running are started afresh around it.

        An in-memory broker forgets its logs and its groups' offsets, and no client
        recovers from that in process. A Faust consumer remembers, per partition, the
        last offset it read and silently drops every message below it (``DROPPED MESSAGE
        ROFF`` in faust's consumer), while the new logs start at 0 again. A client that
        survives can also commit its old offsets into the new broker's group, and Tansu
        answers a fetch beyond a log's end with nothing rather than
        ``OFFSET_OUT_OF_RANGE``, so whoever reads that partition next waits there. Every
        stage is idempotent and the ledger holds what is in flight, so stopping them
        loses nothing. (On Apache Kafka, logs and offsets survive a broker restart, and
        workers and runners reconnect by themselves.)"""
        if self.broker is None:
            raise RuntimeError("only the embedded broker can be restarted")
        dead = set(self.check_alive())
        running = [name for name in self.components if name not in dead]
        for name in running:
            self.kill(name)
        self.broker.stop()
        done = self._start_embedded_broker(port=self.broker.port)
        for name in running:
            self.spawn(name)
        return done.redriven

    def _start_embedded_broker(self, port: int | None = None) -> Reconciled:
        """Start the embedded broker, empty, and reconcile: the topics made, every open
        request re-driven, and what the log of the one before it held for the principals
        (since it started, as ``run/embedded-broker.started`` says) theirs again: the
        responses (each sent once more; a client knows one again by its request id and
        revision), and the notices owed to open requests."""
        home = self.settings.home
        lost_since = _last_broker_start(home)
        self.broker = EmbeddedBroker.start(self._log_path("broker"), port=port)
        _record_broker_start(home, self.broker)
        with Ledger(self.settings.database_url) as ledger:
            done = reconcile(self.bootstrap, ledger, self.datamap, lost_since=lost_since)
        if done.responses or done.notices:
            log.warning(
                "%d response(s) and %d notice(s) the broker may have held are to be sent again",
                done.responses,
                done.notices,
            )
        return done

    def submitter(self) -> Submitter:
        """A producer of request events, signed with the stack's producer key."""
        return Submitter.from_settings(self.settings, self.bootstrap)

    def add(self, name: str, argv: list[str]) -> None:
        """Add a process to the stack; ``spawn(name)`` starts it."""
        self.components[name] = Component(name, argv, free_port() if self.metrics else 0)

    @property
    def metrics_ports(self) -> dict[str, int]:
        """Each process's ``/metrics`` port, by component name."""
        return {c.name: c.metrics_port for c in self.components.values() if c.metrics_port}

    @property
    def metrics_urls(self) -> dict[str, str]:
        return {name: _metrics_url(port) for name, port in self.metrics_ports.items()}

    def metrics_file(self, name: str) -> Path:
        """Where a component's metrics URL is written, for other tools to find."""
        return self.settings.home / "run" / f"{name}.metrics"

    def _log_path(self, name: str) -> Path | None:
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"{name}.log"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DSR_KAFKA_BOOTSTRAP=self.bootstrap,
            DSR_HOME=str(self.settings.home),
            DSR_DATABASE_URL=self.settings.database_url,
            DSR_DATAMAP=str(self.datamap_file),
            DSR_STORAGE_URL=self.settings.storage_url,
            DSR_SESSION_TIMEOUT_S=str(self.settings.session_timeout_s),
            DSR_SIGNING_KEYS=str(self.settings.signing_keys_path),
            DSR_REQUIRE_SIGNATURES=str(self.settings.require_signatures).lower(),
            PYTHONUNBUFFERED="1",
        )
        if self.broker is not None:  # the embedded broker has no idempotent producers
            env["DSR_IDEMPOTENT_PRODUCER"] = "false"
            if not env.get("DSR_FETCH_MAX_WAIT_MS"):  # unless the operator set one
                env["DSR_FETCH_MAX_WAIT_MS"] = str(EMBEDDED_FETCH_MAX_WAIT_MS)
        if self.settings.s3_endpoint_url:
            env["DSR_S3_ENDPOINT_URL"] = self.settings.s3_endpoint_url
        if self.settings.s3_kms_key_id:
            env["DSR_S3_KMS_KEY_ID"] = self.settings.s3_kms_key_id
        return env

    def spawn(self, name: str) -> None:
        comp = self.components[name]
        self.ready_file(name).unlink(missing_ok=True)
        path = self._log_path(name)
        comp.log = open(path, "ab") if path else None  # noqa: SIM115 - closed in stop()
        if comp.metrics_port:  # a report: a disk with no room for it stops nothing
            write_status(self.metrics_file(name), (_metrics_url(comp.metrics_port) + "\n").encode())
        comp.process = subprocess.Popen(
            comp.argv,
            env={
                **self.env(),
                "DSR_COMPONENT": name,
                "DSR_METRICS_PORT": str(comp.metrics_port),
            },
            stdout=comp.log,
            stderr=subprocess.STDOUT if comp.log else None,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill one process, or the embedded broker (``broker``), as a crash would
        (SIGKILL by default)."""
        if name == "broker":
            if self.broker is not None and self.broker.process.poll() is None:
                self.broker.process.send_signal(sig)
                self.broker.process.wait()
            return
        comp = self.components[name]
        if comp.process and comp.process.poll() is None:
            os.killpg(comp.process.pid, sig)
            comp.process.wait()

    def restart(self, name: str) -> None:
        self.kill(name)
        self.spawn(name)

    def check_alive(self) -> list[str]:
        """Names of components that exited on their own."""
        return [
            c.name
            for c in self.components.values()
            if c.process is not None and c.process.poll() is not None
        ]

    def exit_code(self, name: str) -> int | None:
        process = self.components[name].process
        return process.poll() if process is not None else None

    def broker_exit_code(self) -> int | None:
        return self.broker.process.poll() if self.broker is not None else None

    def pid(self, name: str) -> int | None:
        """The process id of a component, or of the embedded broker (``broker``)."""
        if name == "broker":
            return self.broker.process.pid if self.broker is not None else None
        process = self.components[name].process
        return process.pid if process is not None else None

    def ready_file(self, name: str) -> Path:
        return self.settings.home / "run" / f"{name}.ready"

    def wait_joined(
        self,
        names: list[str] | None = None,
        timeout: float = 60.0,
        *,
        supervise: Callable[[], None] | None = None,
    ) -> float:
        """Block until the components have their partitions assigned; return seconds waited.
        A component that dies meanwhile is an error, unless ``supervise`` (a supervisor's
        tick) is given: it is called all along, and restarts what died."""
        start = time.monotonic()
        pending = list(names or self.components)
        while time.monotonic() - start < timeout:
            pending = [n for n in pending if not self.ready_file(n).exists()]
            if not pending:
                return time.monotonic() - start
            if supervise is not None:
                supervise()
            elif dead := self.check_alive():
                raise RuntimeError(f"{', '.join(dead)} exited during start-up; see its log")
            time.sleep(0.05)
        raise TimeoutError(f"{', '.join(pending)} did not join within {timeout:.0f}s")

    def stop(self) -> None:
        if self._home is None:
            return  # not started, or refused the home: what is there is another's
        for comp in self.components.values():
            if comp.process and comp.process.poll() is None:
                os.killpg(comp.process.pid, signal.SIGTERM)
        for comp in self.components.values():
            if comp.process:
                try:
                    comp.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(comp.process.pid, signal.SIGKILL)
                    comp.process.wait()
            if comp.log:
                comp.log.close()
            self.metrics_file(comp.name).unlink(missing_ok=True)
        if self.broker:
            self.broker.stop()
            self.broker = None
        (self.settings.home / "broker.addr").unlink(missing_ok=True)
        self._home.close()
        self._home = None

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _broker_start_file(home: Path) -> Path:
    return home / "run" / "embedded-broker.started"


def _last_broker_start(home: Path) -> datetime | None:
    """When the embedded broker last started here (its log is gone once it stopped)."""
    try:
        return datetime.fromisoformat(_broker_start_file(home).read_text().strip())
    except (OSError, ValueError):
        return None


def _record_broker_start(home: Path, broker: EmbeddedBroker) -> None:
    # not written (a disk with no room): the next restart sends again from an earlier start
    write_status(_broker_start_file(home), broker.started_at.isoformat().encode())


def _metrics_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/metrics"
