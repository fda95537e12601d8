"""Read a process's ``/metrics`` back: the demo's checks and the tests use it."""

from __future__ import annotations

import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

#: Each sample's value, by (name, labels).
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, timeout_s: float = 10) -> Series:
    text = urllib.request.urlopen(url, timeout=timeout_s).read().decode()  # noqa: S310 - our own
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape_until(url: str, ready: Callable[[Series], bool], timeout_s: float = 30) -> Series:
    """Scrape until ``ready`` (or the timeout): a process counts a message just after it
    leaves, and refreshes lag every few seconds."""
    deadline = time.monotonic() + timeout_s
    while not ready(series := scrape(url)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return series


def value(series: Series, name: str, **labels: str) -> float:
    """One sample's value; 0 if there is none."""
    return series.get((name, frozenset(labels.items())), 0.0)


def total_by(series: Series, name: str, label: str) -> dict[str, float]:
    """The samples of ``name`` summed by one of their labels."""
    out: dict[str, float] = defaultdict(float)
    for (sample, labels), v in series.items():
        if sample == name:
            out[dict(labels).get(label, "")] += v
    return dict(out)
