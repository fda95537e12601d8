"""The ledger's gauges: requests in flight, tasks waiting, deadlines and litigation at
risk, acknowledgements unsent, redrives; read from the ledger at each scrape
(``LedgerCollector``), and served by the exporter process."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from services import rules
from services.ledger import Ledger, RequestStatus
from streams.records import Regulation, utcnow

log = logging.getLogger("dsr.monitoring")

IN_FLIGHT = "dsr_requests_in_flight"
IN_FLIGHT_HELP = "Open requests in the ledger, by status (held ones by why they are held)."
IN_FLIGHT_STATUSES = (
    "held_verification",
    "held_fee",
    "held_other",
    "accepted",
    "fanned_out",
    "parked",
)
TASKS_WAITING = "dsr_tasks_waiting"
TASKS_WAITING_HELP = "Tasks waiting for a connector result, by system."
OLDEST_TASK_AGE = "dsr_oldest_task_age_seconds"
OLDEST_TASK_AGE_HELP = (
    "Seconds since the oldest task still waiting for a connector result was created, by "
    "system; 0 when none waits."
)
DEADLINE_AT_RISK = "dsr_deadline_at_risk"
DEADLINE_AT_RISK_HELP = (
    "Open requests by deadline: window=overdue is past its deadline; window=Nd is not "
    "overdue yet but due within N days (so 3d includes 1d)."
)
DEADLINE_WINDOWS: Mapping[str, timedelta] = {
    "1d": timedelta(days=1),
    "3d": timedelta(days=3),
    "7d": timedelta(days=7),
}
REDRIVES = "dsr_redrives"
REDRIVES_HELP = (
    "Failed tasks redriven (dsr dlq redrive), by system, from the ledger's audit trail: "
    "marks when an outage's work was run again."
)
LITIGATION_RISK = "dsr_litigation_risk"
LITIGATION_RISK_HELP = (
    "Open requests old enough that the principal may sue (APPI Art. 39: two weeks after "
    "the request arrived), by regulation; only regulations with such a rule are reported."
)
ACK_UNSENT = "dsr_acknowledgements_unsent"
ACK_UNSENT_HELP = (
    "Requests whose principal has been sent neither an acknowledgement nor the response, "
    "under regulations that ask for receipt to be confirmed (CCPA: within 10 business "
    "days), by regulation; open ones and those answered in the last 30 days: window=any "
    "all of them, window=overdue those past that time."
)
#: How long an answered request whose principal was told nothing stays counted.
UNTOLD_ANSWERED_WITHIN = timedelta(days=30)
_HOLD_STATUS = {"verification_pending": "held_verification", "fee_unpaid": "held_fee"}


class LedgerCollector(Collector):
    """Requests in flight, tasks waiting and the oldest one's age, deadlines at risk and
    litigation risk, read from the ledger at each scrape (a GROUP BY query each).

    The exporter serves them; should several exporters run, each reports the same
    values: aggregate them with ``max``, not ``sum``.
    """

    def __init__(self, ledger: Ledger, systems: Sequence[str] = ()) -> None:
        self.ledger = ledger
        self._systems = set(systems)

    def describe(self) -> list[Metric]:
        return [
            GaugeMetricFamily(IN_FLIGHT, IN_FLIGHT_HELP, labels=["status"]),
            GaugeMetricFamily(TASKS_WAITING, TASKS_WAITING_HELP, labels=["system"]),
            GaugeMetricFamily(OLDEST_TASK_AGE, OLDEST_TASK_AGE_HELP, labels=["system"]),
            GaugeMetricFamily(
                DEADLINE_AT_RISK, DEADLINE_AT_RISK_HELP, labels=["regulation", "window"]
            ),
            GaugeMetricFamily(LITIGATION_RISK, LITIGATION_RISK_HELP, labels=["regulation"]),
            GaugeMetricFamily(ACK_UNSENT, ACK_UNSENT_HELP, labels=["regulation", "window"]),
            CounterMetricFamily(REDRIVES, REDRIVES_HELP, labels=["system"]),
        ]

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        windows = list(DEADLINE_WINDOWS.items())
        try:
            by_status = self.ledger.open_request_counts()
            waiting = self.ledger.pending_task_counts()
            oldest = self.ledger.oldest_pending_tasks()
            redriven = self.ledger.redrives()
            due = self.ledger.open_deadline_counts([now] + [now + span for _, span in windows])
            suable = {
                r.value: self.ledger.open_received_before(r.value, bound)
                for r in Regulation
                if (bound := rules.litigation_risk_from(r.value, now)) is not None
            }
            acknowledging = [r.value for r in Regulation if rules.acknowledgement_due(r, now)]
            untold = self.ledger.untold(acknowledging, now - UNTOLD_ANSWERED_WITHIN)
        except SQLAlchemyError as exc:
            log.warning("ledger gauges skipped: %s", type(exc).__name__)
            return

        yield _in_flight(by_status)

        tasks = GaugeMetricFamily(TASKS_WAITING, TASKS_WAITING_HELP, labels=["system"])
        self._systems |= set(waiting)
        age = GaugeMetricFamily(OLDEST_TASK_AGE, OLDEST_TASK_AGE_HELP, labels=["system"])
        for system in sorted(self._systems):
            tasks.add_metric([system], waiting.get(system, 0))
            since = oldest.get(system)
            age.add_metric([system], max(0.0, (now - since).total_seconds()) if since else 0.0)
        yield tasks
        yield age

        redrives = CounterMetricFamily(REDRIVES, REDRIVES_HELP, labels=["system"])
        for system in sorted(self._systems | set(redriven)):
            redrives.add_metric([system], redriven.get(system, 0))
        yield redrives

        yield _deadlines(due, [window for window, _ in windows])

        litigation = GaugeMetricFamily(LITIGATION_RISK, LITIGATION_RISK_HELP, labels=["regulation"])
        for regulation, n in suable.items():
            litigation.add_metric([regulation], n)
        yield litigation

        yield _unsent(acknowledging, untold, now)


def _in_flight(by_status: Mapping[tuple[str, str | None], int]) -> Metric:
    in_flight = GaugeMetricFamily(IN_FLIGHT, IN_FLIGHT_HELP, labels=["status"])
    counts = dict.fromkeys(IN_FLIGHT_STATUSES, 0)
    for (status, reason), n in by_status.items():
        if status == RequestStatus.HELD:
            status = _HOLD_STATUS.get(reason or "", "held_other")
        if status in counts:
            counts[status] += n
    for status, n in counts.items():
        in_flight.add_metric([status], n)
    return in_flight


def _deadlines(due: Mapping[str, list[int]], windows: list[str]) -> Metric:
    """``due``: per regulation, the open requests due before now and each window's end."""
    risk = GaugeMetricFamily(
        DEADLINE_AT_RISK, DEADLINE_AT_RISK_HELP, labels=["regulation", "window"]
    )
    for regulation in sorted({r.value for r in Regulation} | set(due)):
        overdue, *within = due.get(regulation, [0] * (len(windows) + 1))
        risk.add_metric([regulation, "overdue"], overdue)
        for window, n in zip(windows, within, strict=True):
            risk.add_metric([regulation, window], n - overdue)
    return risk


def _unsent(acknowledging: list[str], untold: list[tuple[str, datetime]], now: datetime) -> Metric:
    unsent = GaugeMetricFamily(ACK_UNSENT, ACK_UNSENT_HELP, labels=["regulation", "window"])
    for regulation in acknowledging:
        by = [rules.acknowledgement_due(r, at) for r, at in untold if r == regulation]
        unsent.add_metric([regulation, "any"], len(by))
        unsent.add_metric([regulation, "overdue"], len([d for d in by if d and d < now]))
    return unsent
