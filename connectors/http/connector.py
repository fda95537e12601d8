"""The HTTP connector: a subject's data behind a REST API.

Reads (``disclose``, ``third_party_records``) return the records the endpoint
answers, across every page, each with a ``_source``.

Changes plan, then execute. When the matching read endpoint is configured
(``disclose`` for correct, suspend and erase; ``third_party_records`` for
stop), the subject's records are read first:

- no records means nothing to change: the change endpoint is not called, so a
  second erasure changes 0 and an unknown subject gets an empty result;
- a correction sends only the fields whose value differs, and reports each
  old and new value;
- a dry run returns that plan and sends nothing.

``changed`` is the number at the endpoint's ``changed_path`` when set, else
the number of records the plan found, else 1 (the request the API accepted). An
erasure's ``kept`` (records kept with identifying fields removed or pseudonymised)
is the number at ``kept_path``; or all of ``changed`` when the endpoint
``anonymises``; else 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from connectors.base import (
    METHODS,
    Connector,
    Identifiers,
)
from connectors.errors import ConnectorError, FatalError
from connectors.http import templates
from connectors.http.api import API, redact_httpx_logs
from connectors.http.config import Endpoint, HTTPConfig
from connectors.http.pages import Record, dig, fetch_records
from connectors.results import CheckResult, OperationResult
from streams.records import FAN_OUT_KINDS, Change, CorrectionReport, Kind

KINDS = {method: kind for kind, method in METHODS.items()}


class HTTPConnector(Connector[HTTPConfig]):
    """Personal data in a SaaS or internal service, reached over its REST API."""

    name = "http"
    Config = HTTPConfig
    capabilities = FAN_OUT_KINDS

    def __init__(self, system: str, config: Mapping[str, Any] | HTTPConfig) -> None:
        super().__init__(system, config)
        redact_httpx_logs()
        self._api = API(system, self.config)

    def __repr__(self) -> str:
        return f"<HTTPConnector system={self.system!r} base_url={self.config.base_url!r}>"

    @classmethod
    def kinds_for(cls, config: HTTPConfig) -> frozenset[Kind]:
        return frozenset(KINDS[op] for op, spec in config.endpoints if spec and op in KINDS)

    def check(self) -> CheckResult:
        """Call the ``check`` endpoint; without one, any answer but 401, 403 or 5xx
        from ``base_url`` will do."""
        spec = self.config.endpoints.check
        what = _what(spec) if spec else "GET base_url"
        try:
            if spec is None:
                self._api.send(what, "GET", "", not_found_is_empty=True)
            else:
                self._api.send(
                    what,
                    spec.method,
                    spec.path,
                    params=dict(spec.query),
                    json_body=spec.body,
                    not_found_is_empty=False,
                )
        except ConnectorError as exc:
            return CheckResult(False, str(exc))
        return CheckResult(True, f"{what} answered")

    def close(self) -> None:
        self._api.close()

    # -- operations ---------------------------------------------------------

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        return self._read("disclose", identifiers)

    def third_party_records(self, identifiers: Identifiers) -> OperationResult:
        return self._read("third_party_records", identifiers)

    def correct(
        self, identifiers: Identifiers, changes: Sequence[Change], *, dry_run: bool = False
    ) -> OperationResult:
        spec = self._endpoint("correct")
        wanted = {c.field: c.value for c in changes}
        planned = self._plan("disclose", spec, identifiers)
        if planned is None:
            fields = sorted(wanted)
            return self._send("correct", spec, identifiers, None, fields, dry_run, changes=wanted)
        stale = [(r, f) for r in planned for f in wanted if f in r and not _same(r[f], wanted[f])]
        fields = sorted({f for _, f in stale})
        report = CorrectionReport.of(
            [{"table": r["_source"], "field": f, "old": r[f], "new": wanted[f]} for r, f in stale],
            wanted,
            held={f for r in planned for f in r},
            correctable=wanted,
        )
        if not stale:
            return OperationResult(correction=report, dry_run=dry_run)
        records = list({id(r): r for r, _ in stale}.values())
        send = {f: wanted[f] for f in fields}
        result = self._send("correct", spec, identifiers, records, fields, dry_run, changes=send)
        return replace(result, correction=report)

    def suspend(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        return self._change("suspend", "disclose", identifiers, grounds, dry_run)

    def erase(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        return self._change("erase", "disclose", identifiers, grounds, dry_run)

    def stop_third_party_provision(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        op = "stop_third_party_provision"
        return self._change(op, "third_party_records", identifiers, grounds, dry_run)

    # -- plumbing -----------------------------------------------------------

    def _endpoint(self, op: str) -> Endpoint:
        spec: Endpoint | None = getattr(self.config.endpoints, op)
        if spec is None:
            raise self._not_supported(KINDS[op])
        return spec

    def _read(self, op: str, identifiers: Identifiers) -> OperationResult:
        spec = self._endpoint(op)
        records = self._fetch(spec, identifiers) or []
        return OperationResult(
            records=records,
            fields=_fields(records),
            identities=_identities(spec, records, identifiers),
        )

    def _fetch(self, spec: Endpoint, identifiers: Identifiers) -> list[Record] | None:
        """The subject's records; None if this endpoint cannot look them up."""
        if not templates.can_find(spec, identifiers):
            return None
        url = templates.path(spec.path, identifiers)
        params = templates.query(spec.query, identifiers)
        json_body = templates.body(spec.body, identifiers) if spec.body is not None else None
        found = fetch_records(self._api, _what(spec), spec, url, params, json_body) or []
        source = spec.source or spec.path
        return [{**r, "_source": source} for r in found if _matches(spec, r, identifiers)]

    def _plan(self, read_op: str, spec: Endpoint, identifiers: Identifiers) -> list[Record] | None:
        """The records a change would touch; None when they cannot be read first."""
        read = getattr(self.config.endpoints, read_op)
        if read is None or not templates.can_find(spec, identifiers):
            return None
        return self._fetch(read, identifiers)

    def _change(
        self,
        op: str,
        read_op: str,
        identifiers: Identifiers,
        grounds: Sequence[str],
        dry_run: bool,
    ) -> OperationResult:
        spec = self._endpoint(op)
        planned = self._plan(read_op, spec, identifiers)
        if planned == []:
            return OperationResult(dry_run=dry_run)
        fields = _fields(planned or [])
        return self._send(op, spec, identifiers, planned, fields, dry_run, grounds=list(grounds))

    def _send(
        self,
        op: str,
        spec: Endpoint,
        identifiers: Identifiers,
        planned: list[Record] | None,
        fields: list[str],
        dry_run: bool,
        *,
        changes: dict[str, Any] | None = None,
        grounds: list[str] | None = None,
    ) -> OperationResult:
        """Send the change (unless ``dry_run``) and count what it changed."""
        if not templates.can_find(spec, identifiers):
            return OperationResult(dry_run=dry_run)
        details: dict[str, Any] = {"request": _what(spec), "planned": planned is not None}
        expected = len(planned) if planned is not None else 1
        if dry_run:
            kept = expected if spec.anonymises else 0
            return OperationResult(
                changed=expected, kept=kept, fields=fields, details=details, dry_run=True
            )
        json_body = None
        if spec.body is not None:
            json_body = templates.body(spec.body, identifiers, changes=changes, grounds=grounds)
        reply = self._api.send(
            _what(spec),
            spec.method,
            templates.path(spec.path, identifiers),
            params=templates.query(spec.query, identifiers),
            json_body=json_body,
        )
        if reply is None:  # the API does not know the subject
            return OperationResult(details=details)
        changed = self._count(spec, reply.body, spec.changed_path, "changed", expected)
        kept = (
            changed if spec.anonymises else self._count(spec, reply.body, spec.kept_path, "kept", 0)
        )
        if kept > changed:
            raise FatalError(
                f"system {self.system!r}: {_what(spec)}: {kept} records kept of {changed} changed"
            )
        return OperationResult(
            changed=changed, kept=kept, fields=fields if changed else [], details=details
        )

    def _count(self, spec: Endpoint, body: Any, path: str | None, what: str, default: int) -> int:
        """The count at ``path`` of a change's reply; ``default`` when no path is set."""
        if not path:
            return default
        count = dig(body, path, default=None)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise FatalError(
                f"system {self.system!r}: {_what(spec)}: no count of {what} records at {path}"
            )
        return count


def _what(spec: Endpoint) -> str:
    return f"{spec.method} {spec.path}"


def _fields(records: list[Record]) -> list[str]:
    return sorted({k for r in records for k in r} - {"_source"})


def _same(old: Any, new: Any) -> bool:
    return type(old) is type(new) and old == new


def _text(value: Any) -> str | None:
    """An identifier's value as text: strings and integers only."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    return None


def _matches(spec: Endpoint, record: Record, identifiers: Identifiers) -> bool:
    """Whether every part of the endpoint's key holds the subject's identifier."""
    return all(
        _text(dig(record, p.field, default=None)) == identifiers.get(p.identifier) for p in spec.key
    )


def _identities(spec: Endpoint, records: list[Record], given: Identifiers) -> list[dict[str, str]]:
    """One unit per record that reveals identifiers: those that found it, and its own."""
    used = {n: given[n] for n in sorted(spec.identifiers) if given.get(n)}
    units: list[dict[str, str]] = []
    for record in records:
        found = {
            name: text
            for name, path in spec.discovers.items()
            if (text := _text(dig(record, path, default=None)))
        }
        unit = {**used, **found}
        if any(given.get(k) != v for k, v in found.items()) and unit not in units:
            units.append(unit)
    return units
