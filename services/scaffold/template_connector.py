"""The generated ``connector.py``: a working in-memory example, marked where to replace it."""

TEMPLATE = '''\
"""The {{name}} connector for dsr-pipeline.

It starts as a working example: an in-memory ``Store`` stands in for {{name}},
so the conformance kit passes before you write anything (run ``pytest``).
Replace each part marked ``TODO`` with calls to your system, then delete the
store. Until a method talks to your system, make it
``raise NotImplementedError("TODO: ...")``: the kit then fails, naming it.

What every method must do (the kit checks each):

- an unknown subject is an empty result, never an error;
- a dry run changes nothing and reports what a real run would change;
- erasure is idempotent: a second run changes nothing;
- a transient failure (timeout, refused connection, 503, lock) raises
  ``RetriableError``; anything retrying will not fix raises ``FatalError``;
- secrets stay in ``SecretStr`` fields and never reach a message or a log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors import CheckResult, Connector, OperationResult, RetriableError
from connectors.base import Identifiers
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from streams.records import Change, Kind

from {{package}}.example_store import STORES, Store

#: Profile fields a correction may change.
CORRECTABLE = ("name", "address")


class {{Class}}Config(BaseModel):
    """How to reach {{name}}: what system owners write under ``config:`` in the data map."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # TODO: replace `store` with what reaches your system (a base URL, a database URL...).
    store: str = Field(min_length=1, description="The name of the in-memory example store.")
    api_token: SecretStr = Field(description="Never shown: not in repr, logs or errors.")
    timeout_s: float = Field(default=10.0, gt=0, description="How long one call may take.")


class {{Class}}Connector(Connector[{{Class}}Config]):
    """Customers of {{name}}, found by their email address."""

    name = "{{name}}"
    Config = {{Class}}Config
    # TODO: keep only the kinds {{name}} can answer; the others are "not applicable".
    capabilities = frozenset(
        {
            Kind.DISCLOSURE,
            Kind.THIRD_PARTY_RECORDS,
            Kind.CORRECTION,
            Kind.SUSPENSION,
            Kind.ERASURE,
            Kind.THIRD_PARTY_STOP,
        }
    )

    def __init__(self, system: str, config: Mapping[str, Any] | {{Class}}Config) -> None:
        super().__init__(system, config)
        # TODO: replace the in-memory store with a client for your system.
        self.store = STORES.setdefault(self.config.store, Store())

    def check(self) -> CheckResult:
        """Reach {{name}} and confirm the config fits it; report problems, never raise."""
        # TODO: replace the in-memory store with calls to your system: reach it, check the config.
        try:
            count = len(self._customers())
        except RetriableError as exc:
            return CheckResult(False, str(exc))
        return CheckResult(True, f"reached {{name}}: {count} customers")

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        """Every record of the subject, each with a ``_source``, and nobody else's."""
        # TODO: replace the in-memory store with calls to your system.
        customer = self._customers().get(identifiers.get("email", ""))
        if customer is None:
            return OperationResult()  # an unknown subject: an empty result
        records = [
            {
                **customer["profile"],
                "processing_suspended": customer["suspended"],
                "_source": "customers",
            }
        ]
        records += [{**invoice, "_source": "invoices"} for invoice in customer["invoices"]]
        return OperationResult(records=records, fields=_fields(records))

    def third_party_records(self, identifiers: Identifiers) -> OperationResult:
        """Records of the subject's data provided to third parties: to whom, why, when."""
        # TODO: replace the in-memory store with calls to your system.
        provisions = self._provisions(identifiers)
        records = [{**p, "_source": "provisions"} for p in provisions]
        return OperationResult(records=records, fields=_fields(records))

    def correct(
        self, identifiers: Identifiers, changes: Sequence[Change], *, dry_run: bool = False
    ) -> OperationResult:
        """Apply ``changes``; report each as field, old and new, and fields not found."""
        # TODO: replace the in-memory store with calls to your system.
        customer = self._customers().get(identifiers.get("email", ""))
        if customer is None:
            return OperationResult(dry_run=dry_run)
        profile = customer["profile"]
        entries = [
            {"table": "customers", "field": c.field, "old": profile[c.field], "new": c.value}
            for c in changes
            if c.field in CORRECTABLE and profile[c.field] != c.value
        ]
        if not dry_run:
            for entry in entries:
                profile[entry["field"]] = entry["new"]
        return OperationResult(
            changed=1 if entries else 0,
            fields=sorted({e["field"] for e in entries}),
            details={
                "changes": entries,
                "not_found": [c.field for c in changes if c.field not in profile],
                "not_correctable": [
                    c.field for c in changes if c.field in profile and c.field not in CORRECTABLE
                ],
            },
            dry_run=dry_run,
        )

    def suspend(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        """Stop using the subject's data but keep it; disclosure then shows it suspended."""
        # TODO: replace the in-memory store with calls to your system.
        customer = self._customers().get(identifiers.get("email", ""))
        if customer is None or customer["suspended"]:
            return OperationResult(dry_run=dry_run)
        if not dry_run:
            customer["suspended"] = True
        return OperationResult(changed=1, fields=["processing_suspended"], dry_run=dry_run)

    def erase(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        """Delete or anonymise the subject's data; a second run changes nothing."""
        # TODO: replace the in-memory store with calls to your system.
        customers = self._customers()
        email = identifiers.get("email", "")
        customer = customers.get(email)
        if customer is None:
            return OperationResult(dry_run=dry_run)  # already erased, or never known
        invoices = customer["invoices"]
        fields = {*customer["profile"], "processing_suspended", *(k for i in invoices for k in i)}
        if not dry_run:
            del customers[email]
        return OperationResult(changed=1 + len(invoices), fields=sorted(fields), dry_run=dry_run)

    def stop_third_party_provision(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        """Stop providing the subject's data to third parties."""
        # TODO: replace the in-memory store with calls to your system.
        running = [p for p in self._provisions(identifiers) if not p["stopped"]]
        if not dry_run:
            for provision in running:
                provision["stopped"] = True
        return OperationResult(
            changed=len(running), fields=["stopped"] if running else [], dry_run=dry_run
        )

    def close(self) -> None:
        """Release connections; called once, when the runner stops."""
        # TODO: close your client's connections.

    # -- the in-memory example: delete these once the methods call your system --

    def _customers(self) -> dict[str, dict[str, Any]]:
        if not self.store.reachable:
            # Your client's timeouts and connection errors become RetriableError like this.
            message = f"system {self.system!r}: {{name}} is unreachable"
            raise RetriableError(message, retry_after=1)
        return self.store.customers

    def _provisions(self, identifiers: Identifiers) -> list[dict[str, Any]]:
        self._customers()  # reach the store
        return self.store.provisions.get(identifiers.get("email", ""), [])


def _fields(records: list[dict[str, Any]]) -> list[str]:
    return sorted({k for r in records for k in r} - {"_source"})
'''
