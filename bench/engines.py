"""``python -m bench.engines``: the embedded broker beside a 3-node Apache Kafka cluster
(``infra/kafka-cluster.sh``, topics with 3 replicas and ``min.insync.replicas`` 2), with
two workers and two runners on five no-op systems each time.

For each engine it measures:
- a burst of ``--requests`` disclosures: throughput, and latency from submission to the
  moment a client consumer sees the response (p50, p99);
- a broker killed with SIGKILL while a request is submitted every 0.2 s: the seconds from
  the kill until a request submitted after it is answered. The embedded broker is started
  again as ``dsr up``'s supervisor does (empty, then a re-drive from the ledger); on the
  cluster the killed node stays down while the other two serve.

Results go to bench/results/engines-<time>.json and are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError

from bench import workload
from services.client import Submitter, Watcher
from services.monitoring.overview import quantiles
from services.stack import Stack
from services.supervisor import Supervisor
from streams import topics
from tests.integration.kafka.cluster import Cluster, start_cluster

RESULTS = Path(__file__).parent / "results"
SYSTEMS = 5


def _burst(stack: Stack, n: int) -> dict[str, Any]:
    events = workload.requests("burst", n)
    watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
    submitter = stack.submitter()
    submitted: dict[str, float] = {}
    seen: dict[str, float] = {}
    start = time.time()
    for i, raw in enumerate(events):
        submitted[f"burst-{i:05d}"] = time.time()
        submitter.submit(raw)
    submitter.producer.flush()
    deadline = time.monotonic() + max(600.0, 0.5 * n)
    while len(seen) < n and time.monotonic() < deadline:
        for _, body in watcher.poll(0.05):
            seen.setdefault(body["request_id"], time.time())
    watcher.close()
    submitter.close()
    latencies = [(seen[r] - submitted[r]) * 1000 for r in seen if r in submitted]
    lat = quantiles(latencies)
    elapsed = max(seen.values(), default=start) - start
    return {
        "requests": n,
        "answered": len(seen),
        "throughput_rps": round(len(seen) / elapsed, 1) if elapsed else None,
        "latency_ms": {k: round(v, 1) if v is not None else None for k, v in lat.items()},
    }


def _recovery(stack: Stack, kill: Callable[[], None], heal: Callable[[], None]) -> float | None:
    """Seconds from the kill until a request submitted after it is answered."""
    settings = stack.settings.model_copy(update={"kafka_bootstrap": stack.bootstrap})
    answered: dict[str, float] = {}
    submitted: dict[str, float] = {}
    stop = threading.Event()

    def probe() -> None:
        i = 0
        while not stop.is_set():
            rid = f"probe-{i:05d}"
            raw = workload.requests("probe", i + 1)[-1]
            try:
                submitter = Submitter.from_settings(settings, stack.bootstrap)
                try:
                    submitter.submit(raw)
                    submitter.producer.flush(timeout=5)
                    submitted[rid] = time.time()
                finally:
                    submitter.producer.close(timeout=1)
            except (KafkaError, OSError):
                pass  # the broker is down: the next probe tries again
            i += 1
            stop.wait(0.2)

    sender = threading.Thread(target=probe, daemon=True)
    sender.start()
    time.sleep(3)  # probes flowing before the kill
    killed = time.time()
    kill()
    deadline = time.monotonic() + 300
    recovered = None
    watcher: Watcher | None = None
    while recovered is None and time.monotonic() < deadline:
        heal()
        try:
            watcher = watcher or Watcher(stack.bootstrap, [topics.RESPONSES])
            for _, body in watcher.poll(0.1):
                answered.setdefault(body["request_id"], time.time())
        except KafkaError:
            watcher = None
            time.sleep(0.2)
            continue
        after = [r for r, t in submitted.items() if t > killed and r in answered]
        if after:
            recovered = min(answered[r] for r in after) - killed
    stop.set()
    sender.join()
    if watcher:
        watcher.close()
    return round(recovered, 2) if recovered is not None else None


def run_engine(name: str, home: Path, n: int, cluster: Cluster | None) -> dict[str, Any]:
    settings = workload.prepare(home, SYSTEMS, "noop")
    if cluster:
        cluster.delete_all_topics()
        # Apache Kafka refuses a session timeout under its group.min.session.timeout.ms
        settings = settings.model_copy(
            update={"kafka_bootstrap": cluster.bootstrap, "session_timeout_override": 6.0}
        )
    stack = Stack(settings, workers=2, runners=2, log_dir=home / "logs", metrics=False)
    with stack:
        stack.wait_joined(timeout=180)
        burst = _burst(stack, n)
        if cluster:
            node = max((1, 2, 3), key=cluster.leads)
            recovery = _recovery(stack, lambda: cluster.kill(node), lambda: None)
            cluster.start(node)
            cluster.wait_healthy()
        else:
            supervisor = Supervisor(stack)
            assert stack.broker is not None
            broker = stack.broker
            recovery = _recovery(
                stack, lambda: os.kill(broker.process.pid, signal.SIGKILL), supervisor.tick
            )
    return {"engine": name, "burst": burst, "recovery_after_broker_kill_s": recovery}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engines", description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="dsr-engines-"))
    results: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "systems": SYSTEMS,
        "workers": 2,
        "runners": 2,
        "engines": [run_engine("embedded (Tansu)", work / "embedded", args.requests, None)],
    }
    print(json.dumps(results["engines"][-1]), flush=True)
    for cluster in start_cluster(work / "kafka"):
        results["engines"].append(
            run_engine("Apache Kafka 4.4.0, 3 nodes", work / "cluster", args.requests, cluster)
        )
        print(json.dumps(results["engines"][-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"engines-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
