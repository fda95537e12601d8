"""Run the demo end to end and check every outcome; exit status says whether all held."""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from services.client import Submitter, Watcher, read_all
from services.datamap import load as load_datamap
from services.delivery.encrypted import open_package_storage
from services.delivery.package import package_prefix
from services.demo.scenario import (
    FORGED,
    HANAKO,
    JIRO,
    MALFORMED,
    TARO,
    Case,
    cases,
    data_checks,
    encode,
)
from services.demo.seed import SAMPLE_DATABASES, seed, seed_provisions
from services.ledger import Action, Ledger
from services.monitoring.scrape import Series, scrape, scrape_until, total_by
from services.processes import hold_home
from services.settings import Settings
from services.stack import Stack
from streams import topics

DATAMAP = Path(__file__).with_name("datamap.yaml")
LETTERHEAD = Path(__file__).with_name("letterhead.yaml")


@dataclass
class Row:
    case: Case
    submitted: float  # wall clock, to compare with the response's completed_at
    status: str = "missing"
    latency_ms: float | None = None
    systems: str = ""
    location: str = ""
    held_first: bool = False


@dataclass
class Report:
    rows: list[Row]
    rejected: list[dict[str, Any]]
    checks: list[tuple[str, bool]]
    join_s: float
    home: Path
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.errors
            and all(r.status == r.case.expected for r in self.rows)
            and all(ok for _, ok in self.checks)
            and bool(self.rejected)
        )

    def latencies(self) -> list[float]:
        return [r.latency_ms for r in self.rows if r.latency_ms is not None]

    def as_dict(self) -> dict[str, Any]:
        lat = self.latencies()
        return {
            "ok": self.ok,
            "worker_join_s": round(self.join_s, 2),
            "latency_ms": {
                "p50": round(statistics.median(lat), 1) if lat else None,
                "max": round(max(lat), 1) if lat else None,
            },
            "requests": [
                {
                    "request_id": r.case.request_id,
                    "kind": r.case.kind,
                    "expected": r.case.expected,
                    "status": r.status,
                    "systems": r.systems,
                    "latency_ms": r.latency_ms,
                    "output": r.location,
                    "note": r.case.note,
                }
                for r in self.rows
            ],
            "rejected": self.rejected,
            "checks": [{"check": name, "ok": ok} for name, ok in self.checks],
            "errors": self.errors,
            "home": str(self.home),
        }


def prepare(settings: Settings) -> Settings:
    """A fresh demo home: sample databases, provision records, the demo data map and
    its letterhead; refused (``HomeInUse``) while another demo runs in it."""
    home = settings.home / "demo"
    if home.exists():
        hold_home(home).close()  # HomeInUse: a demo runs there, its home left as it is
    shutil.rmtree(home, ignore_errors=True)
    prepared = settings.model_copy(
        update={
            "home": home,
            "datamap_override": str(home / "datamap.yaml"),
            "letterhead_override": str(home / "letterhead.yaml"),
        }
    )
    install(prepared)
    return prepared


def install(settings: Settings, *, replace_files: bool = True) -> list[Path]:
    """The demo's sample systems in ``settings.home``, its data map and letterhead where
    ``settings`` looks for them, and its provision records in the ledger, for ``dsr up``.
    Without ``replace_files`` an existing data map or letterhead is kept. Returns the
    files written. Refused (``HomeInUse``) while a stack runs on the home: its systems'
    databases would be replaced under the connectors using them."""
    with hold_home(settings.home):
        seed(settings.home)
        written = [settings.home / name for name in SAMPLE_DATABASES]
        for source, target in (
            (DATAMAP, settings.datamap_path),
            (LETTERHEAD, settings.letterhead_path),
        ):
            if replace_files or not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                written.append(target)
        seed_provisions(settings.database_url)
    return written


def run(
    settings: Settings,
    timeout_s: float = 120.0,
    serve: Callable[[Report, Stack], None] | None = None,
) -> Report:
    """Run every case; ``serve`` is called with the report while the stack still runs."""
    settings = prepare(settings)
    run_id = time.strftime("%H%M%S")
    todo = cases(run_id)
    with Stack(settings, log_dir=settings.home / "logs") as stack:
        join_s = stack.wait_joined()
        ledger = Ledger(settings.database_url)
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES, topics.REJECTED])
        submitter = stack.submitter()
        rows = {c.request_id: Row(c, time.time()) for c in todo}
        submitter.submit_all([encode(c.events[0]) for c in todo] + [MALFORMED])
        forger = Submitter(stack.bootstrap)  # no producer key
        forger.submit_all([FORGED])
        forger.close()
        rejected: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        waiting = set(rows)
        while (waiting or len(rejected) < 2) and time.monotonic() < deadline:
            _release_held(ledger, submitter, rows)
            for topic, body in watcher.poll():
                if topic == topics.REJECTED:
                    rejected.append(
                        {k: body.get(k) for k in ("reason_code", "request_id", "errors")}
                    )
                elif body.get("request_id") in waiting:
                    _record(rows[body["request_id"]], body)
                    waiting.discard(body["request_id"])
            if stack.check_alive():
                break
        errors = [
            f"{n} died; see {settings.home / 'logs' / (n + '.log')}" for n in stack.check_alive()
        ]
        errors += [f"{rid}: no response within {timeout_s:.0f}s" for rid in sorted(waiting)]
        checks = [(name, _safe(check)) for name, check in data_checks(settings.home)]
        checks.append(
            (
                "signed intake: an unsigned erasure is rejected, never run",
                {"request_id": "demo-forged", "reason_code": "unsigned"}
                in [{k: r[k] for k in ("request_id", "reason_code")} for r in rejected]
                and ledger.request("demo-forged") is None,
            )
        )
        checks.append(
            (
                "third-party stop: Taro's recipients stopped in the provision ledger",
                _safe(lambda: ledger.provisions.stopped(TARO)),
            )
        )
        systems = set(load_datamap(settings.datamap_path).systems)
        checks += metrics_checks(stack, {c.kind for c in todo}, systems)
        checks += response_checks(settings, ledger, list(rows.values()))
        checks.append(
            (
                "sealed: no subject's identifier in clear on any topic, in the logs or the ledger",
                _safe(
                    lambda: (
                        not _in_clear(
                            stack.bootstrap,
                            systems,
                            [TARO, HANAKO, JIRO],
                            [*(settings.home / "logs").glob("*.log"), *_files_of(ledger)],
                        )
                    )
                ),
            )
        )
        watcher.close()
        submitter.close()
        ledger.close()
        report = Report(list(rows.values()), rejected, checks, join_s, settings.home, errors)
        if serve is not None:
            serve(report, stack)
    return report


def response_checks(settings: Settings, ledger: Ledger, rows: list[Row]) -> list[tuple[str, bool]]:
    """The held request was audited as held, then released; the written letter is there
    as HTML and PDF (read back through the package store, which opens sealed files);
    every principal was told (the notices agent runs just behind)."""
    home = settings.home
    held = next(r.case.request_id for r in rows if len(r.case.events) > 1)
    actions = [e.action for e in ledger.timeline(held) if e.action != Action.NOTIFIED]
    letter = next((r for r in rows if r.location.endswith("letter.html")), None)
    storage = open_package_storage(settings)
    pdf = package_prefix(letter.case.request_id if letter else "-") + "letter.pdf"
    answered = [r.case.request_id for r in rows if r.status != "missing"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(_told(home, ledger, r) for r in answered):
        time.sleep(0.2)
    return [
        ("held for the fee, then released: both audited", actions[:3] == _HELD_THEN_RELEASED),
        ("written letter: HTML and a PDF", _safe(lambda: storage.get(pdf).startswith(b"%PDF"))),
        (
            "notices: every principal told (outbox and audit trail)",
            all(_told(home, ledger, rid) for rid in answered),
        ),
    ]


_HELD_THEN_RELEASED = ["received", "hold", "released"]


def _in_clear(
    bootstrap: str, systems: set[str], subjects: list[dict[str, str]], files: list[Path]
) -> list[str]:
    """Every topic and file (logs, the ledger's) that holds a subject's identifier in clear
    (none should: ``services.crypto.sealing``). The forged event is left out: its sender had no
    key, so it sits on ``dsr.requests`` as sent, and its rejection quotes it."""
    names = [t.name for t in topics.all_topics(sorted(systems))]
    values = [v.encode() for subject in subjects for v in subject.values()]
    records = [r for r in read_all(bootstrap, names) if r.key != b"demo-forged"]
    if not any(r.topic == topics.RESULTS for r in records):
        raise RuntimeError("no result was read back")  # a check that saw nothing fails
    if not any(p.suffix == ".log" for p in files):
        raise RuntimeError(f"no log among {files}")
    found = {r.topic for r in records if any(v in r.value for v in values)}
    found |= {p.name for p in files if any(v in p.read_bytes() for v in values)}
    return sorted(found)


def _files_of(ledger: Ledger) -> list[Path]:
    """The ledger's SQLite file and its write-ahead log (none for another database)."""
    url = make_url(ledger.url)
    if url.get_backend_name() != "sqlite":
        return []
    database = Path(url.database or "")
    if not database.is_file():
        raise RuntimeError(f"no ledger file at {database}")
    return [p for p in (database, Path(f"{database}-wal")) if p.is_file()]


def _told(home: Path, ledger: Ledger, request_id: str) -> bool:
    """The response notice is in the outbox and recorded as sent (the file is written
    first, then the audit row)."""
    return any((home / "outbox" / request_id).glob(f"{request_id}:response:*.eml")) and any(
        e.action == Action.NOTIFIED and e.detail.get("purpose") == "response"
        for e in ledger.timeline(request_id)
    )


def metrics_checks(stack: Stack, kinds: set[str], systems: set[str]) -> list[tuple[str, bool]]:
    """The processes' /metrics hold a latency histogram for every kind and every system."""

    def observed(series: Series, name: str, label: str) -> set[str]:
        return {k for k, n in total_by(series, f"{name}_count", label).items() if n > 0}

    try:
        worker = scrape_until(
            stack.metrics_urls["worker-0"],
            lambda s: kinds <= observed(s, "dsr_request_latency_seconds", "kind"),
            timeout_s=10,
        )
        runner = scrape(stack.metrics_urls["runner-0"])
    except (OSError, KeyError):
        worker = runner = {}
    return [
        (
            "metrics: a latency histogram for every kind",
            kinds <= observed(worker, "dsr_request_latency_seconds", "kind"),
        ),
        (
            "metrics: a call-time histogram for every system",
            systems <= observed(runner, "dsr_connector_call_seconds", "system"),
        ),
    ]


def _release_held(ledger: Ledger, submitter: Submitter, rows: dict[str, Row]) -> None:
    """Pay the fee for a held request once the principal has been told of the hold (the
    notice that asks for it), as a principal would: a hold notice that finds the request
    already released is not sent, so paying sooner would leave the hold untold."""
    for row in rows.values():
        if len(row.case.events) < 2 or row.held_first:
            continue
        trail = ledger.timeline(row.case.request_id)
        if any(
            e.action == Action.NOTIFIED and (e.detail or {}).get("purpose") == "hold" for e in trail
        ):
            row.held_first = True
            row.submitted = time.time()
            submitter.submit_all([encode(e) for e in row.case.events[1:]])


def _record(row: Row, body: dict[str, Any]) -> None:
    completed = datetime.fromisoformat(body["completed_at"]).timestamp()
    row.latency_ms = round((completed - row.submitted) * 1000, 1)
    row.status = body["status"]
    row.systems = ", ".join(f"{s['system']}:{s['status']}" for s in body.get("systems", []))
    reasons = [r["code"] for r in body.get("reasons", [])]
    row.location = body.get("letter") or body.get("package") or ",".join(reasons)


def _safe(check: Any) -> bool:
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 - a failing check is reported, not raised
        return False
