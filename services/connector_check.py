"""``dsr connector check``: build every system's connector from the data map and reach it.

For each system: its connector, the kinds it answers, the identifiers it looks
the subject up by, and the result of ``check()``. Config errors are reported
per system, so one bad system does not hide the others. A request kind that no
system answers is a warning (such requests fail with ``no_applicable_system``),
not a failure of the check.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from connectors.base import ConnectorBase
from connectors.dispatch import check
from connectors.errors import ConnectorError
from connectors.registry import build
from services.datamap import DataMapError, SystemSpec, load, unanswerable_kinds
from streams.records import Kind

_UNSET_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


@dataclass
class SystemReport:
    """What checking one system found."""

    system: str
    connector: str
    identifiers: list[str]
    discovers: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    ok: bool = False
    message: str = ""
    notes: list[str] = field(default_factory=list)
    skipped: bool = False
    built: bool = False
    #: The kinds the built connector supports.
    supported: frozenset[Kind] = frozenset()


@dataclass
class Report:
    """The whole check: a data map error, or one report per system."""

    datamap: Path
    error: str | None = None
    systems: list[SystemReport] = field(default_factory=list)
    #: Request kinds no system answers: a warning, not a failure.
    unanswerable: list[Kind] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and all(s.ok or s.skipped for s in self.systems)


def check_datamap(path: Path) -> Report:
    """Load the data map at ``path``, then build and check each system's connector."""
    report = Report(path)
    try:
        datamap = load(path)
    except DataMapError as exc:
        report.error = str(exc)
        return report
    for name, spec in datamap.systems.items():
        report.systems.append(check_system(name, spec))
    does = {s.system: s.supported.__contains__ for s in report.systems if s.built}
    report.unanswerable = unanswerable_kinds(datamap, does)
    return report


def check_system(name: str, spec: SystemSpec) -> SystemReport:
    """Build one system's connector, call ``check()`` and close it; never raises."""
    out = SystemReport(name, spec.connector, ["+".join(k) for k in spec.keys], list(spec.discovers))
    out.notes += [f"${{{v}}} is not set in the environment" for v in _unset_vars(spec.config)]
    if spec.excluded is not None:
        out.skipped, out.message = True, f"excluded ({spec.excluded}), so out of scope"
        return out
    try:
        connector = build(name, spec)
    except Exception as exc:  # noqa: BLE001 - reported per system, not as a traceback
        out.message = _describe(exc)
        return out
    out.built = True
    try:
        _fill(out, spec, connector)
    finally:
        connector.close()
    return out


def _fill(out: SystemReport, spec: SystemSpec, connector: ConnectorBase[Any]) -> None:
    supported = out.supported = connector.supported_kinds
    wanted = set(spec.kinds) if spec.kinds is not None else set(supported)
    out.kinds = [k.value for k in Kind if k in supported and k in wanted]
    unsupported = [k.value for k in spec.kinds or () if k not in supported]
    if unsupported:
        out.notes.append(f"the data map lists kinds the connector does not do: {unsupported}")
    try:
        result = check(connector)  # awaited on the connectors' loop if async
    except Exception as exc:  # noqa: BLE001 - check() should not raise; say so
        out.message = f"check() raised {_describe(exc)}"
        return
    out.ok, out.message = result.ok, result.message


def _describe(exc: BaseException) -> str:
    """A connector error's own message; anything else with its type, so it can be looked up."""
    return str(exc) if isinstance(exc, ConnectorError) else f"{type(exc).__name__}: {exc}"


def _unset_vars(value: Any) -> Iterator[str]:
    """``${VAR}`` references left in a config because VAR was not set."""
    if isinstance(value, str):
        yield from _UNSET_VAR.findall(value)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _unset_vars(v)
    elif isinstance(value, list):
        for v in value:
            yield from _unset_vars(v)


def render(report: Report) -> Iterator[str]:
    """The report as lines of rich markup; everything but the status words is escaped."""
    if report.error is not None:
        yield "[red]data map error[/]"
        yield from (f"  {escape(line)}" for line in report.error.splitlines())
        return
    count = len(report.systems)
    yield escape(f"data map {report.datamap}: {count} system{'' if count == 1 else 's'}")
    for s in report.systems:
        yield ""
        yield from _system_lines(s)
    unbuilt = [s.system for s in report.systems if not (s.built or s.skipped)]
    for kind in report.unanswerable:
        yield ""
        unsure = f" (unless {', '.join(unbuilt)}, not built, would)" if unbuilt else ""
        yield "[yellow]warning[/]: " + escape(
            f"no system answers {kind} requests{unsure}: they are answered "
            "no_applicable_system and never complete"
        )
    failed = [s.system for s in report.systems if not (s.ok or s.skipped)]
    yield ""
    if failed:
        names = escape(", ".join(failed))
        yield f"[red]{len(failed)} of {len(report.systems)} systems failed: {names}[/]"
    else:
        yield "[green]every system is ready[/]"


def _system_lines(s: SystemReport) -> Iterator[str]:
    """One system's part of the report."""
    status = "[yellow]skipped[/]" if s.skipped else "[green]ok[/]" if s.ok else "[red]FAILED[/]"
    found = f"; discovers {', '.join(s.discovers)}" if s.discovers else ""
    lines = s.message.splitlines() or [""]
    yield f"{escape(f'{s.system} ({s.connector})')}  {status}"
    yield escape(f"  identifiers: {', '.join(s.identifiers)}{found}")
    if s.built:
        yield escape(f"  kinds:       {', '.join(s.kinds) or 'none'}")
    label = "check:  " if s.built else "skipped:" if s.skipped else "config: "
    yield escape(f"  {label}     {lines[0]}")
    yield from (escape(f"               {line}") for line in lines[1:])
    yield from (escape(f"  note:        {n}") for n in s.notes)
